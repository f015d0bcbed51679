/// Where a Producer's packets go. A closed set, dispatched by a switch rather than an existential
/// call per packet; a pipe to another worker or SFU and the egress tap join it as cases.
enum ProducerSink {
    /// A subscriber's outgoing track.
    case subscriber(Consumer)

    var consumer: Consumer? {
        switch self {
        case .subscriber(let consumer): consumer
        }
    }
}
