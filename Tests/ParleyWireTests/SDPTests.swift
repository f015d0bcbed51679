import Testing
@testable import ParleyWire

@Suite struct SDPTests {
    @Test func chromiumOfferHasBundledSectionsCodecsAndExtensions() throws {
        let offer = try SessionDescription(parsing: fixture("chromium-156-offer.sdp"))
        #expect(offer.bundleMids == ["0", "1", "2", "3"])
        #expect(offer.media.map(\.kind) == ["audio", "video", "audio", "video"])
        #expect(offer.media.map(\.direction) == [.sendonly, .sendonly, .recvonly, .recvonly])
        let video = offer.media[1]
        #expect(video.mid == "1")
        #expect(video.attribute("setup") == "actpass")
        #expect(video.attribute("fingerprint")?.hasPrefix("sha-256 ") == true)
        let codecs = video.codecs
        let vp8 = try #require(codecs.first { $0.name == "VP8" })
        #expect(vp8.clockRate == 90000 && vp8.feedback.contains("nack pli"))
        #expect(codecs.contains { $0.name == "rtx" && $0.associatedPayloadType == vp8.payloadType })
        #expect(codecs.contains { $0.name == "H264" && $0.parameter("packetization-mode") == "1" })
        #expect(video.extensions.contains { $0.uri == "urn:ietf:params:rtp-hdrext:sdes:mid" })
        #expect(video.ssrcs.count == 2 && video.rtxPairs.count == 1)
        let opus = try #require(offer.media[0].codecs.first)
        #expect(opus.name == "opus" && opus.clockRate == 48000 && opus.channels == 2)
    }

    @Test func aiortcOfferParses() throws {
        let offer = try SessionDescription(parsing: fixture("aiortc-1.16-whip-offer.sdp"))
        #expect(offer.media.count == 2)
        #expect(offer.media.allSatisfy { $0.direction == .sendonly && $0.mid != nil })
        #expect(offer.media[1].codecs.contains { $0.name == "VP8" })
        #expect(offer.media[0].attribute("ice-ufrag") != nil || offer.attribute("ice-ufrag") != nil)
    }

    @Test func serializedDescriptionsParseBackEqual() throws {
        for name in ["chromium-156-offer.sdp", "aiortc-1.16-whip-offer.sdp"] {
            let offer = try SessionDescription(parsing: fixture(name))
            #expect(try SessionDescription(parsing: offer.serialized) == offer)
        }
    }

    @Test func badDescriptionsSayWhatIsWrong() {
        #expect(throws: WireError.invalid("SDP must start with v=0")) { try SessionDescription(parsing: "o=- 1 1 IN IP4 0.0.0.0\r\n") }
        #expect(throws: WireError.invalid("SDP is empty")) { try SessionDescription(parsing: "") }
        #expect(throws: WireError.self) { try SessionDescription(parsing: "v=0\r\nthis is not a line\r\n") }
        #expect(throws: WireError.self) { try SessionDescription(parsing: "v=0\r\nm=audio\r\n") }
        #expect(throws: WireError.self) { try SessionDescription(parsing: "v=0\r\n" + String(repeating: "a=x\r\n", count: 40_000)) }
    }

    @Test func mutatedOffersNeverCrash() throws {
        let sample = Array(try fixture("chromium-156-offer.sdp").utf8)
        for input in fuzzCorpus(from: [sample], count: 2_000) {
            if let offer = try? SessionDescription(parsing: String(decoding: input, as: UTF8.self)) {
                for media in offer.media { _ = (media.codecs, media.extensions, media.ssrcs, media.rtxPairs, media.direction) }
            }
        }
    }
}
