import Testing
import ParleyWire
@testable import ParleyTransport

/// Two in-process endpoints exchange DTLS datagrams until both are connected.
func handshake(_ client: DTLSEndpoint, _ server: DTLSEndpoint) {
    var toServer = client.start()
    var toClient: [[UInt8]] = []
    for _ in 0..<20 {
        for datagram in toServer { toClient += datagram.withUnsafeBytes { server.receive($0) } }
        toServer = []
        for datagram in toClient { toServer += datagram.withUnsafeBytes { client.receive($0) } }
        toClient = []
        if case .connected = client.state, case .connected = server.state, toServer.isEmpty { return }
    }
}

@Suite struct DTLSSRTPTests {
    let clientContext = try! DTLSContext(certificate: DTLSCertificate())
    let serverContext = try! DTLSContext(certificate: DTLSCertificate())

    @Test func handshakeExportsMatchingKeysAndChecksFingerprints() throws {
        let client = try DTLSEndpoint(context: clientContext, role: .client, expectedRemoteFingerprint: serverContext.certificate.fingerprint)
        let server = try DTLSEndpoint(context: serverContext, role: .server, expectedRemoteFingerprint: clientContext.certificate.fingerprint)
        handshake(client, server)
        guard case .connected(let clientKeys) = client.state, case .connected(let serverKeys) = server.state else {
            Issue.record("not connected: \(client.state) \(server.state)"); return
        }
        #expect(clientKeys.profile == .aeadAES128GCM)
        #expect(clientKeys.localKey == serverKeys.remoteKey)
        #expect(clientKeys.remoteSalt == serverKeys.localSalt)
        #expect(clientKeys.localKey != clientKeys.remoteKey)
    }

    @Test func handshakeFailsWhenFingerprintDiffersFromSDP() throws {
        let client = try DTLSEndpoint(context: clientContext, role: .client, expectedRemoteFingerprint: clientContext.certificate.fingerprint)
        let server = try DTLSEndpoint(context: serverContext, role: .server, expectedRemoteFingerprint: nil)
        handshake(client, server)
        guard case .failed(.fingerprintMismatch) = client.state else { Issue.record("client state \(client.state)"); return }
    }

    @Test func srtpRoundTripBothProfilesAndTamperingIsRefused() throws {
        for profile in [SRTPProfile.aeadAES128GCM, .aes128CMHMACSHA1_80] {
            let key = [UInt8](repeating: 7, count: profile.keyLength), salt = [UInt8](repeating: 9, count: profile.saltLength)
            let sender = try SRTPSession(profile: profile, key: key, salt: salt, direction: .outbound)
            let receiver = try SRTPSession(profile: profile, key: key, salt: salt, direction: .inbound)
            var packet: [UInt8] = [0x80, 96, 0, 1, 0, 0, 0, 100, 0xCA, 0xFE, 0xBA, 0xBE] + Array(repeating: 0x42, count: 100)
            let plain = packet
            packet += [UInt8](repeating: 0, count: SRTPSession.maximumTrailer)
            let protectedLength = try packet.withUnsafeMutableBytes { try sender.protectRTP($0.baseAddress!, length: plain.count, capacity: $0.count) }
            #expect(protectedLength > plain.count)
            #expect(Array(packet[12..<plain.count]) != Array(plain[12...]))
            var tampered = packet
            tampered[20] ^= 1
            #expect(throws: SRTPError.self) { try tampered.withUnsafeMutableBytes { try receiver.unprotectRTP($0.baseAddress!, length: protectedLength) } }
            let length = try packet.withUnsafeMutableBytes { try receiver.unprotectRTP($0.baseAddress!, length: protectedLength) }
            #expect(Array(packet[0..<length]) == plain)
        }
    }
}
