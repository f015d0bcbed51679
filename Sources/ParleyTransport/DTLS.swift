import COpenSSL
#if canImport(Glibc)
import Glibc
#endif
import ParleyBase
import ParleyWire
import Synchronization

/// Why DTLS setup or a handshake failed.
public enum DTLSError: Error, Equatable, Sendable, CustomStringConvertible {
    case openSSL(String)
    case fingerprintMismatch(expected: String, actual: String)
    case noSRTPProfile
    case alert(String)

    public var description: String {
        switch self {
        case .openSSL(let reason): return "OpenSSL: \(reason)"
        case .fingerprintMismatch(let expected, let actual): return "peer certificate fingerprint \(actual) does not match SDP's \(expected)"
        case .noSRTPProfile: return "handshake chose no SRTP profile"
        case .alert(let reason): return "DTLS alert: \(reason)"
        }
    }

    static func fromQueue(_ context: String) -> DTLSError {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return .openSSL(reasons.isEmpty ? context : "\(context): \(reasons.joined(separator: "; "))")
    }
}

/// A self-signed ECDSA P-256 certificate and its key; peers trust it by the SDP fingerprint.
public final class DTLSCertificate: @unchecked Sendable {
    // Immutable after init; OpenSSL reference-counts and never mutates them in use.
    let key: OpaquePointer
    let certificate: OpaquePointer
    /// `sha-256` fingerprint as SDP writes it: upper-case hex pairs joined by colons.
    public let fingerprint: String

    public init(commonName: String = "parley") throws(DTLSError) {
        OpenSSLRuntime.initialize()
        guard let key = parley_generate_p256_key() else { throw .fromQueue("EC key generation") }
        guard let x509 = X509_new() else { EVP_PKEY_free(key); throw .fromQueue("X509_new") }
        X509_set_version(x509, 2)
        var serial = [UInt8](repeating: 0, count: 8)
        RAND_bytes(&serial, 8)
        ASN1_INTEGER_set_uint64(X509_get_serialNumber(x509), serial.withUnsafeBytes { $0.load(as: UInt64.self) } >> 1)
        X509_gmtime_adj(X509_getm_notBefore(x509), -86_400)
        X509_gmtime_adj(X509_getm_notAfter(x509), 30 * 86_400)
        X509_set_pubkey(x509, key)
        let name = X509_get_subject_name(x509)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, commonName, -1, -1, 0)
        X509_set_issuer_name(x509, name)
        guard X509_sign(x509, key, EVP_sha256()) > 0 else {
            X509_free(x509); EVP_PKEY_free(key)
            throw .fromQueue("X509_sign")
        }
        self.key = key
        self.certificate = x509
        self.fingerprint = Self.sha256Fingerprint(of: x509)
    }

    deinit {
        X509_free(certificate)
        EVP_PKEY_free(key)
    }

    static func sha256Fingerprint(of x509: OpaquePointer) -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        X509_digest(x509, EVP_sha256(), &digest, &length)
        return digest.prefix(Int(length)).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}

/// An OpenSSL `SSL_CTX` for DTLS 1.2 with use_srtp, shared by every endpoint using one certificate.
public final class DTLSContext: @unchecked Sendable {
    // SSL_CTX is safe to share across threads once configured.
    let context: OpaquePointer
    public let certificate: DTLSCertificate
    fileprivate let endpoints = Atomic<Int>(0)

    /// How many endpoints made from this context are alive (each holds an `SSL`).
    public var liveEndpoints: Int { endpoints.load(ordering: .relaxed) }

    public init(certificate: DTLSCertificate) throws(DTLSError) {
        OpenSSLRuntime.initialize()
        guard let context = SSL_CTX_new(DTLS_method()) else { throw .fromQueue("SSL_CTX_new") }
        self.context = context
        self.certificate = certificate
        parley_SSL_CTX_pin_dtls12(context)
        guard SSL_CTX_use_certificate(context, certificate.certificate) == 1,
              SSL_CTX_use_PrivateKey(context, certificate.key) == 1 else { throw .fromQueue("loading certificate") }
        // Returns 0 on success, unlike most OpenSSL calls.
        guard SSL_CTX_set_tlsext_use_srtp(context, "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80") == 0 else {
            throw .fromQueue("use_srtp")
        }
        SSL_CTX_set_cipher_list(context, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384")
        // Peers are authenticated by the SDP fingerprint after the handshake, not by a CA.
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT) { _, _ in 1 }
        SSL_CTX_set_options(context, parley_SSL_OP_NO_QUERY_MTU())
    }

    deinit { SSL_CTX_free(context) }
}

/// Keys for both SRTP directions once the handshake is done (RFC 5764 §4.2).
public struct SRTPKeys: Sendable, Equatable {
    public var profile: SRTPProfile
    public var localKey: [UInt8], localSalt: [UInt8]
    public var remoteKey: [UInt8], remoteSalt: [UInt8]
}

/// One DTLS association on memory BIOs: datagrams in, datagrams out, no sockets.
public final class DTLSEndpoint {
    public enum Role: Sendable { case client, server }
    public enum State: Equatable, Sendable {
        case handshaking
        case connected(SRTPKeys)
        case failed(DTLSError)
        case closed
    }

    public let role: Role
    public private(set) var state: State = .handshaking
    /// The sha-256 fingerprint the peer's SDP promised; checked after the handshake.
    public var expectedRemoteFingerprint: String?
    private let ssl: OpaquePointer
    private let readBIO: OpaquePointer
    private let writeBIO: OpaquePointer
    private let context: DTLSContext
    static let mtu = 1200

    public init(context: DTLSContext, role: Role, expectedRemoteFingerprint: String?) throws(DTLSError) {
        guard let ssl = SSL_new(context.context) else { throw .fromQueue("SSL_new") }
        guard let readBIO = BIO_new(BIO_s_mem()) else { SSL_free(ssl); throw .fromQueue("BIO_new") }
        guard let writeBIO = BIO_new(BIO_s_mem()) else { BIO_free(readBIO); SSL_free(ssl); throw .fromQueue("BIO_new") }
        parley_BIO_set_mem_eof_return(readBIO, -1)
        parley_BIO_set_mem_eof_return(writeBIO, -1)
        SSL_set_bio(ssl, readBIO, writeBIO)
        parley_DTLS_set_link_mtu(ssl, Self.mtu)
        self.ssl = ssl
        self.context = context
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        self.role = role
        self.expectedRemoteFingerprint = expectedRemoteFingerprint
        if role == .client { SSL_set_connect_state(ssl) } else { SSL_set_accept_state(ssl) }
        LiveCObjects.dtlsEndpoints.add(1, ordering: .relaxed)
        context.endpoints.add(1, ordering: .relaxed)
    }

    deinit {
        SSL_free(ssl)  // frees both BIOs too
        LiveCObjects.dtlsEndpoints.subtract(1, ordering: .relaxed)
        context.endpoints.subtract(1, ordering: .relaxed)
    }

    /// Starts the handshake (the client sends its ClientHello); returns datagrams to send.
    public func start() -> [[UInt8]] {
        guard role == .client else { return [] }
        advanceHandshake()
        return drainOutgoing()
    }

    /// Feeds one DTLS datagram from the peer; returns datagrams to send back.
    public func receive(_ datagram: UnsafeRawBufferPointer) -> [[UInt8]] {
        guard case .handshaking = state else {
            if case .connected = state { processRecords(datagram) }
            return drainOutgoing()
        }
        ERR_clear_error()
        _ = BIO_write(readBIO, datagram.baseAddress, Int32(datagram.count))
        advanceHandshake()
        return drainOutgoing()
    }

    /// Time until OpenSSL wants `handleTimeout`, if a retransmission timer runs.
    public var timeoutRemaining: Nanoseconds? {
        guard case .handshaking = state else { return nil }
        var tv = timeval()
        guard parley_DTLSv1_get_timeout(ssl, &tv) == 1 else { return nil }
        return UInt64(tv.tv_sec) * 1_000_000_000 + UInt64(tv.tv_usec) * 1000
    }

    /// Retransmits the last flight when OpenSSL's timer expired.
    public func handleTimeout() -> [[UInt8]] {
        guard case .handshaking = state else { return [] }
        if parley_DTLSv1_handle_timeout(ssl) < 0 {
            state = .failed(.fromQueue("handshake timed out"))
        }
        return drainOutgoing()
    }

    /// Sends close_notify.
    public func close() -> [[UInt8]] {
        guard state != .closed else { return [] }
        SSL_shutdown(ssl)
        state = .closed
        return drainOutgoing()
    }

    private func advanceHandshake() {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            finishHandshake()
            return
        }
        let error = SSL_get_error(ssl, result)
        if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return }
        state = .failed(.fromQueue("handshake"))
    }

    private func processRecords(_ datagram: UnsafeRawBufferPointer) {
        ERR_clear_error()
        _ = BIO_write(readBIO, datagram.baseAddress, Int32(datagram.count))
        var scratch = [UInt8](repeating: 0, count: 2048)
        while true {
            let read = SSL_read(ssl, &scratch, Int32(scratch.count))
            if read > 0 { continue }  // application data: Parley opens no data channels yet
            let error = SSL_get_error(ssl, read)
            if error == SSL_ERROR_ZERO_RETURN { state = .closed }
            break
        }
        ERR_clear_error()
    }

    private func finishHandshake() {
        guard let peer = SSL_get1_peer_certificate(ssl) else {
            state = .failed(.openSSL("peer sent no certificate"))
            return
        }
        let actual = DTLSCertificate.sha256Fingerprint(of: peer)
        X509_free(peer)
        if let expected = expectedRemoteFingerprint, expected.uppercased() != actual {
            state = .failed(.fingerprintMismatch(expected: expected, actual: actual))
            return
        }
        guard let selected = SSL_get_selected_srtp_profile(ssl),
              let profile = SRTPProfile(opensslID: UInt(selected.pointee.id)) else {
            state = .failed(.noSRTPProfile)
            return
        }
        let keyLength = profile.keyLength, saltLength = profile.saltLength
        var material = [UInt8](repeating: 0, count: 2 * (keyLength + saltLength))
        let label = "EXTRACTOR-dtls_srtp"
        guard SSL_export_keying_material(ssl, &material, material.count, label, label.utf8.count, nil, 0, 0) == 1 else {
            state = .failed(.fromQueue("export keying material"))
            return
        }
        let clientKey = Array(material[0..<keyLength])
        let serverKey = Array(material[keyLength..<2 * keyLength])
        let clientSalt = Array(material[2 * keyLength..<2 * keyLength + saltLength])
        let serverSalt = Array(material[(2 * keyLength + saltLength)...])
        let keys = role == .client
            ? SRTPKeys(profile: profile, localKey: clientKey, localSalt: clientSalt, remoteKey: serverKey, remoteSalt: serverSalt)
            : SRTPKeys(profile: profile, localKey: serverKey, localSalt: serverSalt, remoteKey: clientKey, remoteSalt: clientSalt)
        state = .connected(keys)
    }

    /// Reads what OpenSSL wrote and packs whole DTLS records into datagrams of at most `mtu` bytes.
    private func drainOutgoing() -> [[UInt8]] {
        let pending = Int(parley_BIO_pending(writeBIO))
        guard pending > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: pending)
        let read = Int(BIO_read(writeBIO, &bytes, Int32(pending)))
        guard read > 0 else { return [] }
        var datagrams: [[UInt8]] = []
        var current: [UInt8] = []
        var offset = 0
        while offset + 13 <= read {
            let recordLength = 13 + (Int(bytes[offset + 11]) << 8 | Int(bytes[offset + 12]))
            let end = min(read, offset + recordLength)
            if !current.isEmpty && current.count + (end - offset) > Self.mtu {
                datagrams.append(current)
                current = []
            }
            current.append(contentsOf: bytes[offset..<end])
            offset = end
        }
        if !current.isEmpty { datagrams.append(current) }
        return datagrams
    }
}
