import Testing
@testable import ParleyWire

/// RFC 5769 §2.1 sample request (note the username is padded with spaces in the RFC).
let rfc5769Request = bytes("""
    000100582112a442b7e7a701bc34d686fa87dfae
    802200105354554e207465737420636c69656e74
    002400046e0001ff80290008932ff9b151263b36
    000600096576746a3a683676592020200008001 4
    9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
    80280004e57a3bcf
    """)
/// RFC 5769 §2.2 sample IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853.
let rfc5769Response = bytes("""
    010100 3c2112a442b7e7a701bc34d686fa87dfae
    8022000b7465737420766563746f7220
    002000080001a147e112a643
    000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7
    80280004c07d4c96
    """)
let rfc5769Password = Array("VOkJxbRl1RmTxUk/WvJxBt".utf8)

@Suite struct STUNTests {
    @Test func rfc5769SampleRequestParsesAndAuthenticates() throws {
        let message = try STUNMessage(parsing: rfc5769Request)
        #expect(message.messageClass == .request)
        #expect(message.method == STUNMessage.Method.binding.rawValue)
        #expect(message.username == "evtj:h6vY")
        #expect(message.attribute(.priority) == [0x6E, 0x00, 0x01, 0xFF])
        #expect(message.attribute(.software) == Array("STUN test client".utf8))
        rfc5769Request.withUnsafeBytes { raw in
            #expect(STUNMessage.verifyIntegrity(raw, key: rfc5769Password))
            #expect(STUNMessage.verifyFingerprint(raw))
            #expect(!STUNMessage.verifyIntegrity(raw, key: Array("wrong password".utf8)))
        }
    }

    @Test func rfc5769SampleResponseCarriesTheMappedAddress() throws {
        let message = try STUNMessage(parsing: rfc5769Response)
        #expect(message.messageClass == .success)
        let address = try STUNAddress(xorEncoded: message.attribute(.xorMappedAddress)!, transactionID: message.transactionID)
        #expect(address == STUNAddress(ip: [192, 0, 2, 1], port: 32853))
        rfc5769Response.withUnsafeBytes { raw in
            #expect(STUNMessage.verifyIntegrity(raw, key: rfc5769Password))
            #expect(STUNMessage.verifyFingerprint(raw))
        }
        #expect(address.xorEncoded(transactionID: message.transactionID) == message.attribute(.xorMappedAddress))
    }

    @Test func encodedMessagesVerifyAndTamperingIsDetected() throws {
        let message = STUNMessage(messageClass: .request, transactionID: Array(1...12), attributes: [
            .init(.username, Array("abcd:efgh".utf8)), .init(.useCandidate, []), .init(.priority, [1, 2, 3, 4]),
        ])
        var encoded = message.encoded(integrityKey: Array("secret".utf8), fingerprint: true)
        let parsed = try STUNMessage(parsing: encoded)
        #expect(parsed.username == "abcd:efgh")
        #expect(parsed.attribute(.useCandidate) == [])
        encoded.withUnsafeBytes { #expect(STUNMessage.verifyIntegrity($0, key: Array("secret".utf8)) && STUNMessage.verifyFingerprint($0)) }
        encoded[26] ^= 0x01
        encoded.withUnsafeBytes { #expect(!STUNMessage.verifyIntegrity($0, key: Array("secret".utf8)) && !STUNMessage.verifyFingerprint($0)) }
    }

    @Test func malformedMessagesAreRejectedWithReasons() {
        #expect(throws: WireError.truncated("STUN header needs 20 bytes, got 3")) { try STUNMessage(parsing: [0, 1, 0]) }
        var badCookie = rfc5769Request
        badCookie[4] = 0
        #expect(throws: WireError.invalid("STUN magic cookie missing")) { try STUNMessage(parsing: badCookie) }
        var badLength = rfc5769Request
        badLength[3] = 0x5C
        #expect(throws: WireError.self) { try STUNMessage(parsing: badLength) }
    }

    @Test func tenThousandMutatedMessagesNeverCrashOrAuthenticate() {
        for input in fuzzCorpus(from: [rfc5769Request], count: 10_000) where input != rfc5769Request {
            _ = try? STUNMessage(parsing: input)
            let authentic = input.withUnsafeBytes { STUNMessage.verifyIntegrity($0, key: rfc5769Password) && STUNMessage.verifyFingerprint($0) }
            #expect(!authentic)
        }
    }
}
