/// RTCP APP (RFC 3550 §6.7): a subtype, the sender's SSRC, a four-character name and data of
/// the application's own. Parley's pipes between SFU workers and nodes carry their control
/// messages (which producers cross, which layers the far side wants) in APP packets named "PRLY",
/// inside SRTCP, so control and media share one protected path and one port.
public struct ApplicationDefined: Sendable, Equatable {
    public var subtype: UInt8
    public var ssrc: UInt32
    /// Four ASCII bytes.
    public var name: UInt32
    public var data: [UInt8]

    /// "PRLY", the name of Parley's pipe messages.
    public static let parleyName: UInt32 = 0x50524C59
    /// The most data one APP packet of ours carries (a datagram has room for the SRTCP trailer).
    public static let maximumData = 1100

    public init(subtype: UInt8, ssrc: UInt32, name: UInt32 = Self.parleyName, data: [UInt8]) {
        self.subtype = subtype & 0x1F; self.ssrc = ssrc; self.name = name; self.data = data
    }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= 12 else { throw .truncated("APP needs 12 bytes, has \(bytes.count)") }
        guard bytes[1] == RTCPPacket.PacketType.application.rawValue else { throw .invalid("not an APP packet") }
        subtype = bytes[0] & 0x1F
        ssrc = bytes.readU32(at: 4)
        name = bytes.readU32(at: 8)
        data = Array(bytes[12...])
    }

    /// Appends the packet; the data is padded with zeros to a 32-bit boundary, as RFC 3550 asks
    /// (a reader of JSON data stops at the first zero).
    public func write(into out: inout [UInt8]) {
        let start = out.beginRTCP(count: subtype, type: .application)
        out.appendU32(ssrc)
        out.appendU32(name)
        out.append(contentsOf: data)
        out.finishRTCP(startingAt: start)
    }

    /// The data without the zero padding `write` added.
    public var unpaddedData: ArraySlice<UInt8> {
        var end = data.count
        while end > 0, data[end - 1] == 0 { end -= 1 }
        return data[0..<end]
    }
}
