import ParleyBase
import ParleyTestSupport
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

    @Test func libsrtp2IsTheOpenSSLBuildNotDebiansNSSOne() {
        // The NSS build allocates per packet; `make` builds and links the OpenSSL one (.build-deps).
        #expect(SRTPSession.encryptsWithOpenSSL, "built without PKG_CONFIG_PATH=.build-deps/libsrtp2/lib/pkgconfig: use make")
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

@Suite struct RobustnessTests {
    @Test func garbageDatagramsDoNotBreakAHandshakeInProgress() throws {
        let clientContext = try DTLSContext(certificate: DTLSCertificate())
        let serverContext = try DTLSContext(certificate: DTLSCertificate())
        let client = try DTLSEndpoint(context: clientContext, role: .client, expectedRemoteFingerprint: serverContext.certificate.fingerprint)
        let server = try DTLSEndpoint(context: serverContext, role: .server, expectedRemoteFingerprint: clientContext.certificate.fingerprint)
        var rng = SeededGenerator()
        func junk() -> [UInt8] {
            // Looks like a DTLS record (content type 20...63) but is not one.
            [UInt8.random(in: 20...63, using: &rng)] + (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        for _ in 0..<500 { _ = junk().withUnsafeBytes { server.receive($0) } }
        var toServer = client.start()
        for _ in 0..<20 {
            var toClient: [[UInt8]] = []
            for datagram in toServer {
                _ = junk().withUnsafeBytes { server.receive($0) }
                toClient += datagram.withUnsafeBytes { server.receive($0) }
            }
            toServer = toClient.flatMap { datagram in datagram.withUnsafeBytes { client.receive($0) } }
        }
        guard case .connected = client.state, case .connected = server.state else {
            Issue.record("handshake did not survive junk: \(client.state) / \(server.state)"); return
        }
        for _ in 0..<500 { _ = junk().withUnsafeBytes { server.receive($0) } }
        if case .connected = server.state {} else { Issue.record("junk after the handshake broke it: \(server.state)") }
    }

    @Test func iceLiteAnswersOnlyChecksWithTheRightCredentials() throws {
        var agent = ICELiteAgent(localUfrag: "sfu1", localPassword: "sfu-password-0123456789")
        agent.remoteUfrag = "peer"
        let from = PeerAddress(ipv4: (10, 0, 0, 7), port: 5000)
        func check(username: String, key: String, useCandidate: Bool = true) -> [UInt8] {
            STUNMessage(messageClass: .request, transactionID: Array(repeating: 3, count: 12), attributes: [
                .init(.username, Array(username.utf8)),
            ] + (useCandidate ? [.init(.useCandidate, [])] : [])).encoded(integrityKey: Array(key.utf8))
        }
        #expect(throws: ICECheckError.wrongUsername("sfu2:peer")) {
            try check(username: "sfu2:peer", key: "sfu-password-0123456789").withUnsafeBytes { try agent.handleBindingRequest($0, from: from, now: 0) }
        }
        #expect(throws: ICECheckError.wrongUsername("sfu1:mallory")) {
            try check(username: "sfu1:mallory", key: "sfu-password-0123456789").withUnsafeBytes { try agent.handleBindingRequest($0, from: from, now: 0) }
        }
        #expect(throws: ICECheckError.badIntegrity) {
            try check(username: "sfu1:peer", key: "guess").withUnsafeBytes { try agent.handleBindingRequest($0, from: from, now: 0) }
        }
        #expect(agent.selectedAddress == nil)
        let response = try check(username: "sfu1:peer", key: "sfu-password-0123456789").withUnsafeBytes { try agent.handleBindingRequest($0, from: from, now: 5) }
        #expect(agent.selectedAddress == from && agent.nominated && agent.lastCheck == 5)
        let parsed = try STUNMessage(parsing: response)
        #expect(parsed.messageClass == .success && parsed.transactionID == Array(repeating: 3, count: 12))
        #expect(try STUNAddress(xorEncoded: parsed.attribute(.xorMappedAddress)!, transactionID: parsed.transactionID) == STUNAddress(ip: [10, 0, 0, 7], port: 5000))
        response.withUnsafeBytes { #expect(STUNMessage.verifyIntegrity($0, key: Array("sfu-password-0123456789".utf8)) && STUNMessage.verifyFingerprint($0)) }
        // A later check without USE-CANDIDATE from elsewhere does not move the nominated pair.
        _ = try check(username: "sfu1:peer", key: "sfu-password-0123456789", useCandidate: false)
            .withUnsafeBytes { try agent.handleBindingRequest($0, from: PeerAddress(ipv4: (10, 0, 0, 8), port: 1), now: 6) }
        #expect(agent.selectedAddress == from)
    }

    @Test func randomTokensHaveTheLengthAndAlphabetICEAsksForAndDoNotRepeat() {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var seen = Set<String>()
        var characters = Set<Character>()
        for length in [1, 8, 24, 100] {
            for _ in 0..<200 {
                let token = RandomToken.make(length: length)
                #expect(token.count == length)
                #expect(token.allSatisfy(allowed.contains))
                if length >= 8 { #expect(seen.insert(token).inserted) }
                characters.formUnion(token)
            }
        }
        // 20,000+ draws reach every one of the 62 characters.
        #expect(characters == allowed)
    }
}
