import Foundation
import ParleyMediaAPI
import ParleyWire

/// The control messages of a pipe, each one RTCP APP packet ("PRLY", the subtype says which)
/// with JSON data, sent inside SRTCP on the pipe itself. Each is idempotent and sent again
/// (announcements every 2 s, states and wants every 250 ms), so a lost one only delays.
enum PipeMessage: Equatable {
    /// A producer whose media may cross, and how to read it: sent by its side.
    case announce(PipeAnnouncement)
    /// A producer gone.
    case withdraw(meetingID: String, producerID: String)
    /// What the publisher sends now of each layer (most layers do not cross).
    case state(PipeProducerState)
    /// What the far side's subscribers want of a producer: sent by the receiving side.
    case wants(PipeWants)
    /// The link is there (every 2 s, with the announcements): a side that hears nothing of a
    /// link for a while knows the far side ended it, and ends its own.
    case alive(meetingID: String)

    enum Subtype: UInt8 { case announce = 1, withdraw = 2, state = 3, wants = 4, alive = 5 }

    init(_ packet: ApplicationDefined) throws {
        guard packet.name == ApplicationDefined.parleyName, let subtype = Subtype(rawValue: packet.subtype) else {
            throw WireError.invalid("APP \(packet.name) subtype \(packet.subtype) is no pipe message")
        }
        let data = Data(packet.unpaddedData)
        let decoder = JSONDecoder()
        switch subtype {
        case .announce: self = .announce(try decoder.decode(PipeAnnouncement.self, from: data))
        case .withdraw:
            let body = try decoder.decode(PipeWithdrawal.self, from: data)
            self = .withdraw(meetingID: body.meeting, producerID: body.id)
        case .state: self = .state(try decoder.decode(PipeProducerState.self, from: data))
        case .wants: self = .wants(try decoder.decode(PipeWants.self, from: data))
        case .alive: self = .alive(meetingID: try decoder.decode(PipeAlive.self, from: data).meeting)
        }
    }

    /// The APP packet, from `ssrc`.
    func packet(ssrc: UInt32) -> ApplicationDefined {
        let encoder = JSONEncoder()
        let (subtype, data): (Subtype, Data?) = switch self {
        case .announce(let body): (.announce, try? encoder.encode(body))
        case .withdraw(let meeting, let id): (.withdraw, try? encoder.encode(PipeWithdrawal(meeting: meeting, id: id)))
        case .state(let body): (.state, try? encoder.encode(body))
        case .wants(let body): (.wants, try? encoder.encode(body))
        case .alive(let meeting): (.alive, try? encoder.encode(PipeAlive(meeting: meeting)))
        }
        return ApplicationDefined(subtype: subtype.rawValue, ssrc: ssrc, data: Array(data ?? Data()))
    }
}

struct PipeCodec: Codable, Equatable {
    var payloadType: UInt8
    var name: String
    var clockRate: UInt32
    var channels: Int?
    var fmtp: String?
    var feedback: [String]

    init(_ codec: RTPCodec) {
        payloadType = codec.payloadType; name = codec.name; clockRate = codec.clockRate
        channels = codec.channels; fmtp = codec.fmtp; feedback = codec.feedback
    }

    var codec: RTPCodec { RTPCodec(payloadType: payloadType, name: name, clockRate: clockRate, channels: channels, fmtp: fmtp, feedback: feedback) }
}

struct PipeAnnouncement: Codable, Equatable {
    var meeting: String
    var id: String
    var participant: String
    var kind: MediaKind
    var source: String
    var mid: String
    var codec: PipeCodec
    var red: UInt8?
    /// The SSRC of each layer on the pipe, lowest first.
    var ssrcs: [UInt32]
    var rids: [String?]
    /// Audio: the CSRC naming the speaker (the origin's, so clients see one id everywhere).
    var sourceID: UInt32
}

struct PipeAlive: Codable, Equatable {
    var meeting: String
}

struct PipeWithdrawal: Codable, Equatable {
    var meeting: String
    var id: String
}

struct PipeProducerState: Codable, Equatable {
    var meeting: String
    var id: String
    var active: [Bool]
    var bitrates: [Int]
    var widths: [Int?]
    var heights: [Int?]
    var temporalLayers: Int
}

struct PipeWants: Codable, Equatable {
    var meeting: String
    var id: String
    /// Bit per layer.
    var layers: UInt64
    /// The highest VP8 temporal layer wanted (2: all).
    var temporal: Int
}
