/// The level of the audio in a packet (RFC 6464 §3): a voice-activity bit and the level in
/// −dBov, 0 (loudest) to 127 (silence).
public struct AudioLevelExtension: Equatable, Sendable {
    public var voiceActivity: Bool
    public var level: UInt8

    public init(voiceActivity: Bool, level: UInt8) {
        self.voiceActivity = voiceActivity
        self.level = level & 0x7F
    }

    /// From the element's first byte (the one-byte form has one; the two-byte form may pad).
    @inlinable
    public init(parsing data: UnsafeRawBufferPointer) throws(WireError) {
        guard let byte = data.first else { throw .truncated("audio level header extension") }
        self.init(byte: byte)
    }

    /// From the byte as it is on the wire.
    @inlinable
    public init(byte: UInt8) {
        voiceActivity = byte & 0x80 != 0
        level = byte & 0x7F
    }

    /// The byte as it is on the wire.
    @inlinable
    public var byte: UInt8 { (voiceActivity ? 0x80 : 0) | level }

    @inlinable
    public func write(id: UInt8, into writer: inout OneByteExtensionWriter) {
        let byte = self.byte
        writer.append(id: id, length: 1) { $0[0] = byte }
    }
}
