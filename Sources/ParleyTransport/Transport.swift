import ParleyBase
import ParleyWire

/// One peer connection's security stack: ICE-lite, then DTLS, then SRTP. Sans-I/O: the caller feeds
/// datagrams with the time and sends what `outbox` fills; media is decrypted and encrypted in place.
public final class SecureTransport {
    public enum State: Equatable, Sendable {
        case new, checking, connected, failed(String), closed
    }

    /// What one received datagram turned out to be, after decryption.
    public enum Received: Equatable, Sendable {
        /// A plaintext RTP packet of `length` bytes now at the buffer's start.
        case rtp(length: Int)
        case rtcp(length: Int)
        /// Handled inside (STUN, DTLS): look at `outbox` and `state`.
        case control
        case dropped(DropReason)
    }

    public enum DropReason: Equatable, Sendable {
        case stun(ICECheckError), dtlsBeforeICE, mediaBeforeSRTP, srtp(SRTPError), unknown, wrongAddress
    }

    public private(set) var state: State = .new
    public var ice: ICELiteAgent
    public let dtls: DTLSEndpoint
    private var srtpIn: SRTPSession?
    /// SRTCP only (a few reports a second).
    private var srtpOut: SRTPSession?
    private var localKeys: SRTPKeys?
    /// One outbound SRTP context per RTP SSRC: libsrtp finds a session's streams by walking a
    /// linked list, which for a subscriber with dozens of streams cost ~11 % of the SFU's CPU.
    /// Every packet of one SSRC goes through the same context, so no (SSRC, index) is used twice;
    /// for that reason entries live as long as the transport (SSRCs are bounded by its mids).
    private var srtpOutBySSRC: [UInt32: SRTPSession] = [:]
    private var clientStarted = false
    private var firstTimeoutAt: Nanoseconds?
    /// Datagrams the transport wants sent to `ice.selectedAddress` (or the address given).
    public var outbox: [(bytes: [UInt8], to: PeerAddress)] = []
    public let localFingerprint: String
    /// How long without a valid STUN check before the peer is considered gone (RFC 7675 uses 30 s).
    public var consentTimeout: Nanoseconds = .seconds(30)

    public init(context: DTLSContext, role: DTLSEndpoint.Role = .server, remoteFingerprint: String?, ice: ICELiteAgent = ICELiteAgent()) throws(DTLSError) {
        self.ice = ice
        self.dtls = try DTLSEndpoint(context: context, role: role, expectedRemoteFingerprint: remoteFingerprint)
        self.localFingerprint = context.certificate.fingerprint
    }

    public var isConnected: Bool { state == .connected }
    public var remoteAddress: PeerAddress? { ice.selectedAddress }

    /// Handles one datagram; RTP and RTCP are decrypted in place in `buffer`.
    public func receive(_ buffer: UnsafeMutableRawBufferPointer, length: Int, from address: PeerAddress, now: Nanoseconds) -> Received {
        let packet = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
        switch PacketClass(packet) {
        case .stun:
            do {
                let response = try ice.handleBindingRequest(packet, from: address, now: now)
                outbox.append((response, address))
                if state == .new { state = .checking }
                if dtls.role == .client, !clientStarted {
                    clientStarted = true
                    flush(dtls.start(), to: address)
                }
                return .control
            } catch {
                return .dropped(.stun(error))
            }
        case .dtls:
            guard let selected = ice.selectedAddress else { return .dropped(.dtlsBeforeICE) }
            guard selected == address else { return .dropped(.wrongAddress) }
            ice.heardOnSelected(now: now)
            flush(dtls.receive(packet), to: selected)
            updateAfterDTLS()
            return .control
        case .rtp, .rtcp:
            guard let srtpIn else { return .dropped(.mediaBeforeSRTP) }
            guard address == ice.selectedAddress else { return .dropped(.wrongAddress) }
            do {
                if PacketClass(packet) == .rtp {
                    let plain = try srtpIn.unprotectRTP(buffer.baseAddress!, length: length)
                    ice.heardOnSelected(now: now)
                    return .rtp(length: plain)
                } else {
                    let plain = try srtpIn.unprotectRTCP(buffer.baseAddress!, length: length)
                    ice.heardOnSelected(now: now)
                    return .rtcp(length: plain)
                }
            } catch {
                return .dropped(.srtp(error))
            }
        case .unknown:
            return .dropped(.unknown)
        }
    }

    /// The SRTP context that encrypts RTP of `ssrc`: made on first use and kept as long as the
    /// transport, so every packet of one SSRC goes through one context and no (SSRC, index) is
    /// used twice. nil before DTLS has given keys, or if libsrtp2 refuses.
    public func outboundSession(ssrc: UInt32) -> SRTPSession? {
        if let session = srtpOutBySSRC[ssrc] { return session }
        guard let keys = localKeys,
              let session = try? SRTPSession(profile: keys.profile, key: keys.localKey, salt: keys.localSalt, direction: .outbound) else { return nil }
        srtpOutBySSRC[ssrc] = session
        return session
    }

    /// Encrypts an outgoing RTP packet in place; nil if SRTP is not ready or refuses.
    public func protectRTP(_ buffer: UnsafeMutableRawPointer, length: Int, capacity: Int) -> Int? {
        guard length >= 12 else { return nil }
        let ssrc = UInt32(bigEndian: buffer.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        return try? outboundSession(ssrc: ssrc)?.protectRTP(buffer, length: length, capacity: capacity)
    }

    /// Encrypts an outgoing RTCP compound packet in place; nil if SRTP is not ready or refuses.
    public func protectRTCP(_ buffer: UnsafeMutableRawPointer, length: Int, capacity: Int) -> Int? {
        try? srtpOut?.protectRTCP(buffer, length: length, capacity: capacity)
    }

    /// Drives DTLS retransmissions and consent expiry; call at least every `nextTimeout`.
    public func handleTimeout(now: Nanoseconds) {
        guard state != .closed else { return }
        let firstTimeout = firstTimeoutAt ?? now
        firstTimeoutAt = firstTimeout
        if let last = ice.lastCheck, now > last + consentTimeout {
            state = .failed("ICE consent expired: no check for \(consentTimeout / 1_000_000_000) s")
            return
        }
        if ice.lastCheck == nil, dtls.role == .server, now > firstTimeout + consentTimeout {
            state = .failed("no ICE connectivity check arrived within \(consentTimeout / 1_000_000_000) s")
            return
        }
        if let remaining = dtls.timeoutRemaining, remaining == 0, let address = ice.selectedAddress {
            flush(dtls.handleTimeout(), to: address)
            updateAfterDTLS()
        }
    }

    /// Starts the DTLS handshake as client towards an address the caller chose (load generator, pipes).
    public func startClient(to address: PeerAddress) {
        ice.select(address)
        guard !clientStarted else { return }
        clientStarted = true
        flush(dtls.start(), to: address)
    }

    public func close() {
        if let address = ice.selectedAddress { flush(dtls.close(), to: address) }
        state = .closed
        srtpIn = nil
        srtpOut = nil
        localKeys = nil
        srtpOutBySSRC.removeAll()
    }

    private func flush(_ datagrams: [[UInt8]], to address: PeerAddress) {
        for datagram in datagrams { outbox.append((datagram, address)) }
    }

    private func updateAfterDTLS() {
        switch dtls.state {
        case .connected(let keys) where srtpIn == nil:
            do {
                srtpIn = try SRTPSession(profile: keys.profile, key: keys.remoteKey, salt: keys.remoteSalt, direction: .inbound)
                srtpOut = try SRTPSession(profile: keys.profile, key: keys.localKey, salt: keys.localSalt, direction: .outbound)
                localKeys = keys
                state = .connected
            } catch {
                state = .failed("SRTP setup: \(error)")
            }
        case .failed(let error):
            state = .failed(error.description)
        case .closed:
            state = .closed
        default:
            break
        }
    }
}
