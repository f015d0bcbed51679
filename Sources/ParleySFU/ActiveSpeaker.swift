import ParleyMediaAPI
import ParleyTransport

/// Loudness of one audio producer from the audio-level header extension (RFC 6464: the level in
/// -dBov, 0 loudest, 127 silence): the loudest packet of each check interval, smoothed across
/// intervals (speech comes in bursts; an average over an interval would drown it in its pauses).
struct SpeechActivity {
    private var peak = 0
    /// Smoothed loudness, 0 (silence) … 127 (as loud as it gets).
    private(set) var loudness = 0.0

    mutating func add(level: UInt8) {
        peak = max(peak, 127 - Int(level & 0x7F))
    }

    /// Closes an interval: no packets (DTX, muted) counts as silence.
    mutating func sample() {
        loudness = 0.5 * loudness + 0.5 * Double(peak)
        peak = 0
    }
}

extension WorkerCore {
    /// Below this smoothed loudness (about -50 dBov) nobody is speaking.
    static let speechThreshold = 77.0
    /// A new speaker must be this much louder than the current one (dB), or the current one quiet.
    static let speakerMargin = 5.0

    /// Picks each meeting's active speaker from its audio producers' levels: the loudest above the
    /// threshold, held for two checks in a row, replacing the current one only when clearly
    /// louder or when the current one fell silent. Changes go out as `activeSpeaker` events.
    func checkSpeakers() {
        for router in routers.values {
            var loudest: (participantID: String, loudness: Double)?
            var current = 0.0
            for producer in router.producers where producer.kind == .audio && producer.audioLevelExtensionID != nil {
                producer.speech.sample()
                let loudness = producer.speech.loudness
                if producer.participantID == router.activeSpeaker { current = max(current, loudness) }
                if loudness >= Self.speechThreshold, loudness > (loudest?.loudness ?? 0) { loudest = (producer.participantID, loudness) }
            }
            guard let candidate = loudest, candidate.participantID != router.activeSpeaker else {
                router.speakerCandidate = nil
                continue
            }
            let replaces = router.activeSpeaker == nil || current < Self.speechThreshold || candidate.loudness >= current + Self.speakerMargin
            guard replaces else {
                router.speakerCandidate = nil
                continue
            }
            if router.speakerCandidate == candidate.participantID {
                router.activeSpeaker = candidate.participantID
                router.speakerCandidate = nil
                emit(.activeSpeaker(meetingID: router.meetingID, participantID: candidate.participantID))
            } else {
                router.speakerCandidate = candidate.participantID
            }
        }
    }
}
