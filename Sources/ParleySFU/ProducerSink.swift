/// Where a Producer's packets go. A closed set, dispatched by a switch rather than an existential
/// call per packet; a pipe to another worker or SFU and the egress tap join it as cases.
enum ProducerSink {
    /// A subscriber's outgoing track (video: each subscriber's Consumer is a sink of its own).
    case subscriber(Consumer)
    /// The meeting's speaker selection (audio: the one sink of every audio Producer, which puts
    /// the loudest into each subscriber's speaker slots).
    case speakers(SpeakerFanout)
    /// A pipe to another worker or SFU that carries the meeting: what its subscribers want of
    /// this producer crosses once.
    case pipe(PipeSink)

    var consumer: Consumer? {
        switch self {
        case .subscriber(let consumer): consumer
        case .speakers, .pipe: nil
        }
    }
}
