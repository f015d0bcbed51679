import ParleyBase
import ParleyTransport
import ParleyWire

/// STUN: the parser, the writer, both integrity checks and the ICE-lite agent that answers
/// binding requests (what `WorkerCore` does with every STUN datagram).
enum STUNTarget {
    static let address = PeerAddress(ipv4: (192, 0, 2, 7), port: 50_000)

    static func run(_ data: UnsafeRawBufferPointer) {
        _ = STUNMessage.isSTUN(data)
        _ = STUNMessage.verifyFingerprint(data)
        _ = STUNMessage.verifyIntegrity(data, key: Array("fuzz-password".utf8))
        guard let message = try? STUNMessage(parsing: data) else { return }

        // Parse → write → parse: the writer leaves MESSAGE-INTEGRITY and FINGERPRINT out.
        let plain = message.encoded(integrityKey: nil, fingerprint: false)
        guard let again = try? STUNMessage(parsing: plain) else { fatalError("an encoded STUN message does not parse") }
        var expected = message
        expected.attributes.removeAll {
            $0.type == STUNMessage.AttributeType.messageIntegrity.rawValue || $0.type == STUNMessage.AttributeType.fingerprint.rawValue
        }
        require(again == expected, "STUN round trip changed the message")

        if let value = message.attribute(.xorMappedAddress), let mapped = try? STUNAddress(xorEncoded: value, transactionID: message.transactionID) {
            let encoded = mapped.xorEncoded(transactionID: message.transactionID)
            require((try? STUNAddress(xorEncoded: encoded, transactionID: message.transactionID)) == mapped, "XOR-MAPPED-ADDRESS round trip")
        }

        // The server's path: the USERNAME picks the transport, its agent checks and answers.
        guard let username = message.username, let local = ICELiteAgent.localUfrag(ofUsername: username) else { return }
        let remote = String(username.dropFirst(local.count + 1))
        let password = "fuzz-password-0123456789"
        var agent = ICELiteAgent(localUfrag: String(local), localPassword: password)
        agent.remoteUfrag = remote
        _ = try? agent.handleBindingRequest(data, from: address, now: 1_000)

        // The same message signed with the agent's password must pass its checks (the writer
        // and the verifiers agree) and get an authentic answer.
        guard data.count < 60_000 else { return }
        let signed = message.encoded(integrityKey: Array(password.utf8), fingerprint: true)
        signed.withUnsafeBytes { raw in
            require(STUNMessage.verifyIntegrity(raw, key: Array(password.utf8)), "a signed message fails MESSAGE-INTEGRITY")
            require(STUNMessage.verifyFingerprint(raw), "a signed message fails FINGERPRINT")
            let isBindingRequest = message.messageClass == .request && message.method == STUNMessage.Method.binding.rawValue
            do {
                let response = try agent.handleBindingRequest(raw, from: address, now: 2_000)
                require(isBindingRequest, "the agent answered a message that is not a binding request")
                response.withUnsafeBytes { answer in
                    require(STUNMessage.verifyIntegrity(answer, key: Array(password.utf8)) && STUNMessage.verifyFingerprint(answer),
                            "the agent's answer does not verify")
                }
                let parsed = try STUNMessage(parsing: response)
                let mapped = try STUNAddress(xorEncoded: parsed.attribute(.xorMappedAddress) ?? [], transactionID: parsed.transactionID)
                require(mapped == STUNAddress(ip: address.ipBytes, port: address.port), "the answer maps another address")
            } catch {
                // Grapheme clusters can join the colon to its neighbours; only plain usernames
                // are sure to match the agent made from them.
                require(!isBindingRequest || !username.utf8.allSatisfy { $0 < 0x80 }, "a signed binding request was refused: \(error)")
            }
        }
    }
}
