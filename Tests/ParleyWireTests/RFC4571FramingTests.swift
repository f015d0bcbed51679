import Testing
import ParleyWire

@Suite struct RFC4571FramingTests {
    /// Feeds `bytes` to the reassembler in pieces of `piece` bytes and collects the packets.
    func packets(from bytes: [UInt8], piece: Int, capacity: Int = 1500) -> [RFC4571Reassembler.Frame: Int] {
        var reassembler = RFC4571Reassembler()
        var frames: [RFC4571Reassembler.Frame: Int] = [:]
        let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 1)
        defer { destination.deallocate() }
        var offset = 0
        while offset < bytes.count {
            let count = reassembler.fill { space in
                let count = min(piece, space.count, bytes.count - offset)
                bytes.withUnsafeBytes { space.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: count) }
                return count
            }
            offset += count
            while let frame = reassembler.next(into: destination) { frames[frame, default: 0] += 1 }
        }
        #expect(reassembler.buffered == 0)
        return frames
    }

    func framed(_ packet: [UInt8]) -> [UInt8] {
        let (high, low) = RFC4571Reassembler.header(length: packet.count)
        return [high, low] + packet
    }

    @Test func packetsComeOutWholeHoweverTheStreamIsCut() {
        let stream = (0..<300).flatMap { framed([UInt8](repeating: UInt8($0 & 0xFF), count: 20 + $0 % 1200)) }
        for piece in [1, 3, 1000, 65536] {
            let frames = packets(from: stream, piece: piece)
            #expect(frames.values.reduce(0, +) == 300)
            #expect(frames.keys.allSatisfy { if case .packet = $0 { return true } else { return false } })
        }
    }

    @Test func anOversizedPacketIsSkippedAndTheNextOneStillComes() {
        let stream = framed([UInt8](repeating: 1, count: 60000)) + framed([1, 2, 3])
        #expect(packets(from: stream, piece: 4096) == [.tooLarge(60000): 1, .packet(3): 1])
    }

    @Test func theLargestFramesPassInASlowTrickle() {
        let stream = (0..<3).flatMap { _ in framed([UInt8](repeating: 9, count: 65535)) }
        #expect(packets(from: stream, piece: 7001, capacity: 65535) == [.packet(65535): 3])
    }
}
