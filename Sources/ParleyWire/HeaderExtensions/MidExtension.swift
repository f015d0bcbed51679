/// The media section an RTP stream belongs to (RFC 8843 §15, `sdes:mid`): the mid's ASCII bytes.
public struct MidExtension: Equatable, Sendable {
    public var mid: String

    public init(mid: String) { self.mid = mid }

    public init(parsing data: UnsafeRawBufferPointer) throws(WireError) {
        guard !data.isEmpty else { throw .truncated("mid header extension") }
        mid = String(decoding: data, as: UTF8.self)
    }

    public func write(id: UInt8, into writer: inout OneByteExtensionWriter) {
        writer.append(id: id, bytes: OneByteExtensionWriter.elementBytes(of: mid))
    }
}
