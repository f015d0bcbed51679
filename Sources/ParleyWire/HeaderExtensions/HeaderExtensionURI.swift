/// The RTP header extensions Parley reads or writes, by the URI SDP negotiates them with
/// (`a=extmap`, RFC 8285 §5).
public enum HeaderExtensionURI {
    public static let mid = "urn:ietf:params:rtp-hdrext:sdes:mid"
    public static let audioLevel = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    public static let rid = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
    public static let repairedRid = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
    public static let transportWideCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
}
