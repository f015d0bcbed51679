/// The RTP stream id of a simulcast encoding (RFC 8852 §3.1, `sdes:rtp-stream-id`), or of the
/// encoding a repair stream repairs (§3.2, `sdes:repaired-rtp-stream-id`): ASCII bytes.
public struct RidExtension: Equatable, Sendable {
    public var rid: String

    public init(rid: String) { self.rid = rid }

    public init(parsing data: UnsafeRawBufferPointer) throws(WireError) {
        guard !data.isEmpty else { throw .truncated("rid header extension") }
        rid = String(decoding: data, as: UTF8.self)
    }

    public func write(id: UInt8, into writer: inout OneByteExtensionWriter) {
        writer.append(id: id, bytes: OneByteExtensionWriter.elementBytes(of: rid))
    }
}
