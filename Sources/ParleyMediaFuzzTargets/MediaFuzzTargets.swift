/// The fuzz targets of the media plane's parsers (STUN, RTP, RTCP, SDP and offer handling,
/// RFC 4571), apart from those of signaling, Redis and the HTTP APIs (`FuzzTargets` has them
/// all): libFuzzer's cost per input grows with the instrumented code linked in, and without
/// SwiftNIO, Hummingbird and swift-crypto these run about ten times as many inputs a second.
public enum MediaFuzzTargets {
    public typealias Target = @Sendable (UnsafeRawBufferPointer) -> Void

    /// Each target by the name of its corpus directory, `fuzz/corpus/<name>/`.
    public static let all: [String: Target] = [
        "stun": STUNTarget.run,
        "rtp": RTPTarget.run,
        "rtcp-sr": RTCPTargets.senderReport,
        "rtcp-rr": RTCPTargets.receiverReport,
        "rtcp-sdes": RTCPTargets.sourceDescription,
        "rtcp-bye": RTCPTargets.goodbye,
        "rtcp-nack": RTCPTargets.nack,
        "rtcp-pli": RTCPTargets.pictureLossIndication,
        "rtcp-fir": RTCPTargets.fullIntraRequest,
        "rtcp-remb": RTCPTargets.remb,
        "rtcp-twcc": RTCPTargets.transportWideFeedback,
        "rtcp-compound": RTCPTargets.compound,
        "sdp": SDPTarget.run,
        "rfc4571": RFC4571Target.run,
    ]
}

/// A broken invariant: libFuzzer reports the trap as a crash and writes the input out; a replay
/// test fails on it. (Release builds keep `fatalError`, unlike `assert`.)
@inline(never)
package func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("fuzz invariant broken: \(message())", file: file, line: line) }
}
