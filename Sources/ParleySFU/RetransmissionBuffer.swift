/// The last packets of a stream, plaintext, by sequence number, to answer NACKs. Memory is
/// allocated once; storing copies into a slot.
final class RetransmissionBuffer {
    static let slotSize = 1500
    private let slots: Int
    private let memory: UnsafeMutableRawBufferPointer
    private var sequences: [Int32]
    private var lengths: [Int]

    init(slots: Int = 512) {
        self.slots = slots
        memory = .allocate(byteCount: slots * Self.slotSize, alignment: 16)
        sequences = Array(repeating: -1, count: slots)
        lengths = Array(repeating: 0, count: slots)
    }

    deinit { memory.deallocate() }

    func store(_ packet: UnsafeRawBufferPointer, sequence: UInt16) {
        guard packet.count <= Self.slotSize else { return }
        let index = Int(sequence) % slots
        let slot = UnsafeMutableRawBufferPointer(rebasing: memory[(index * Self.slotSize)..<(index * Self.slotSize + packet.count)])
        slot.copyMemory(from: packet)
        sequences[index] = Int32(sequence)
        lengths[index] = packet.count
    }

    func packet(sequence: UInt16) -> UnsafeRawBufferPointer? {
        let index = Int(sequence) % slots
        guard sequences[index] == Int32(sequence) else { return nil }
        return UnsafeRawBufferPointer(rebasing: memory[(index * Self.slotSize)..<(index * Self.slotSize + lengths[index])])
    }
}
