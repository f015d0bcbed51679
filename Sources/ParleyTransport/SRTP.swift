import CSRTP
import ParleyBase
import ParleyWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The SRTP protection profiles Parley negotiates in DTLS use_srtp (RFC 5764, RFC 7714).
public enum SRTPProfile: Sendable, Equatable {
    case aeadAES128GCM
    case aes128CMHMACSHA1_80

    /// The OpenSSL profile id of `SSL_get_selected_srtp_profile`.
    public init?(opensslID: UInt) {
        switch opensslID {
        case 0x0007: self = .aeadAES128GCM
        case 0x0001: self = .aes128CMHMACSHA1_80
        default: return nil
        }
    }

    public var keyLength: Int { 16 }
    public var saltLength: Int { self == .aeadAES128GCM ? 12 : 14 }
}

/// Why SRTP refused a packet.
public enum SRTPError: Error, Equatable, Sendable {
    case setup(Int32)
    case refused(Int32)
    case tooShort
    case noRoom
}

private let srtpLibraryReady: Bool = {
    // libsrtp2 is built on OpenSSL (scripts/build-libsrtp2.sh): OpenSSL is set up first, our way.
    OpenSSLRuntime.initialize()
    return srtp_init() == srtp_err_status_ok
}()

/// One libsrtp2 session for one direction of one transport. Owns its `srtp_t`.
public final class SRTPSession {
    public enum Direction: Sendable { case inbound, outbound }

    /// Whether the libsrtp2 linked in encrypts with OpenSSL, as scripts/build-libsrtp2.sh builds
    /// it. Debian's own libsrtp2 is built on NSS, which allocates five times per packet on each
    /// side (a PKCS#11 context per call): a build that found it instead (no PKG_CONFIG_PATH to
    /// .build-deps) would break the allocation-free media path, so tests and benchmarks check this.
    public static var encryptsWithOpenSSL: Bool {
        #if canImport(Glibc)
        // RTLD_DEFAULT: every object loaded; NSS's PKCS#11 entry point is there only with NSS.
        return dlsym(UnsafeMutableRawPointer(bitPattern: 0), "PK11_Encrypt") == nil
        #else
        return true
        #endif
    }

    /// Bytes `protect` may add past the packet (auth tag, SRTCP index).
    public static let maximumTrailer = Int(SRTP_MAX_TRAILER_LEN) + 4

    private var session: srtp_t?

    public init(profile: SRTPProfile, key: [UInt8], salt: [UInt8], direction: Direction) throws(SRTPError) {
        precondition(key.count == profile.keyLength && salt.count == profile.saltLength)
        guard srtpLibraryReady else { throw .setup(-1) }
        var policy = srtp_policy_t()
        switch profile {
        case .aeadAES128GCM:
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp)
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp)
        case .aes128CMHMACSHA1_80:
            srtp_crypto_policy_set_rtp_default(&policy.rtp)
            srtp_crypto_policy_set_rtcp_default(&policy.rtcp)
        }
        policy.ssrc.type = direction == .inbound ? ssrc_any_inbound : ssrc_any_outbound
        policy.window_size = 1024
        // Retransmissions on the original SSRC (subscribers without RTX) repeat sequence numbers.
        policy.allow_repeat_tx = 1
        var master = key + salt
        let status = master.withUnsafeMutableBufferPointer { buffer -> srtp_err_status_t in
            policy.key = buffer.baseAddress
            return srtp_create(&session, &policy)
        }
        guard status == srtp_err_status_ok else { throw .setup(Int32(status.rawValue)) }
        LiveCObjects.srtpSessions.add(1, ordering: .relaxed)
    }

    deinit {
        guard let session else { return }
        srtp_dealloc(session)
        LiveCObjects.srtpSessions.subtract(1, ordering: .relaxed)
    }

    /// Encrypts an RTP packet in place; `buffer` must have `maximumTrailer` bytes past `length`.
    /// Returns the new length.

    public func protectRTP(_ buffer: UnsafeMutableRawPointer, length: Int, capacity: Int) throws(SRTPError) -> Int {
        guard capacity - length >= Self.maximumTrailer else { throw .noRoom }
        return try call(buffer, length, srtp_protect)
    }


    public func protectRTCP(_ buffer: UnsafeMutableRawPointer, length: Int, capacity: Int) throws(SRTPError) -> Int {
        guard capacity - length >= Self.maximumTrailer else { throw .noRoom }
        return try call(buffer, length, srtp_protect_rtcp)
    }

    /// Authenticates and decrypts an SRTP packet in place; returns the plaintext length.

    public func unprotectRTP(_ buffer: UnsafeMutableRawPointer, length: Int) throws(SRTPError) -> Int {
        guard length >= 12 else { throw .tooShort }
        return try call(buffer, length, srtp_unprotect)
    }


    public func unprotectRTCP(_ buffer: UnsafeMutableRawPointer, length: Int) throws(SRTPError) -> Int {
        guard length >= 8 else { throw .tooShort }
        return try call(buffer, length, srtp_unprotect_rtcp)
    }


    func call(_ buffer: UnsafeMutableRawPointer, _ length: Int,
              _ body: (srtp_t?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?) -> srtp_err_status_t) throws(SRTPError) -> Int {
        var newLength = Int32(length)
        let status = body(session, buffer, &newLength)
        guard status == srtp_err_status_ok else { throw .refused(Int32(status.rawValue)) }
        return Int(newLength)
    }
}

/// How many DTLS endpoints (`SSL` with its BIOs) and libsrtp2 sessions are alive in this process,
/// for `/healthz` and the soak. Tests, which run side by side in one process, count one SFU's
/// endpoints through its `DTLSContext.liveEndpoints` instead.
public enum LiveCObjects {
    static let dtlsEndpoints = Atomic<Int>(0)
    static let srtpSessions = Atomic<Int>(0)

    public static var dtls: Int { dtlsEndpoints.load(ordering: .relaxed) }
    public static var srtp: Int { srtpSessions.load(ordering: .relaxed) }
}
