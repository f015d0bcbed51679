/// The transport-wide sequence number of a packet (draft-holmer-rmcat-transport-wide-cc-extensions-01
/// §2): one count over every stream of a transport, which transport-wide feedback refers to.
public struct TransportWideSequenceExtension: Equatable, Sendable {
    public var sequence: UInt16

    public init(sequence: UInt16) { self.sequence = sequence }

    @inlinable
    public init(parsing data: UnsafeRawBufferPointer) throws(WireError) {
        guard data.count == 2 else { throw .invalid("transport-wide sequence header extension of \(data.count) bytes") }
        sequence = data.readU16(at: 0)
    }

    @inlinable
    public func write(id: UInt8, into writer: inout OneByteExtensionWriter) {
        let sequence = self.sequence
        writer.append(id: id, length: 2) { $0.writeU16(sequence, at: 0) }
    }
}
