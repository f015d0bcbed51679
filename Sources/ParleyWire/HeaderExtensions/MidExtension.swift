/// The media section an RTP stream belongs to (RFC 8843 §15, `sdes:mid`): the mid's ASCII bytes.
public struct MidExtension: Equatable, Sendable {
    public var mid: String

    public init(mid: String) { self.mid = mid }

    public init(parsing data: UnsafeRawBufferPointer) throws(WireError) {
        guard !data.isEmpty else { throw .truncated("mid header extension") }
        mid = String(decoding: data, as: UTF8.self)
    }

    /// The bytes written: at most 16 (one element of a one-byte block).
    public static func bytes(of mid: String) -> [UInt8] { Array(mid.utf8.prefix(OneByteExtensionWriter.maximumDataLength)) }

    public func write(id: UInt8, into writer: inout OneByteExtensionWriter) {
        Self.write(Self.bytes(of: mid), id: id, into: &writer)
    }

    /// Writes a mid already cut to its bytes (`bytes(of:)`), as the media path does.
    @inlinable
    public static func write(_ bytes: [UInt8], id: UInt8, into writer: inout OneByteExtensionWriter) {
        guard !bytes.isEmpty else { return }
        writer.append(id: id, length: bytes.count) { data in bytes.withUnsafeBytes { data.copyMemory(from: $0) } }
    }
}
