import ParleyWire

/// RFC 4571 framing (ICE-TCP): the reassembler fed the stream in arbitrary pieces, drained after
/// each read as the worker drains it, against the frames read straight off the whole stream.
/// The first input byte picks the piece sizes and the size of the packet buffer.
enum RFC4571Target {
    static let destinationSizes = [1, 12, 200, 1500, 2048, 65535]

    static func run(_ data: UnsafeRawBufferPointer) {
        guard let seed = data.first else { return }
        let stream = UnsafeRawBufferPointer(rebasing: data[1...])
        let capacity = destinationSizes[Int(seed >> 5) % destinationSizes.count]

        // Expected: every whole frame in order, and the bytes of an unfinished one left over.
        var expected: [(frame: RFC4571Reassembler.Frame, bytes: ArraySlice<UInt8>)] = []
        var offset = 0
        while stream.count - offset >= 2 {
            let length = Int(stream[offset]) << 8 | Int(stream[offset + 1])
            guard stream.count - offset - 2 >= length else { break }
            let body = Array(stream[(offset + 2)..<(offset + 2 + length)])[...]
            expected.append(length <= capacity ? (.packet(length), body) : (.tooLarge(length), []))
            offset += 2 + length
        }

        var reader = RFC4571Reassembler()
        let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
        defer { destination.deallocate() }
        var got: [(frame: RFC4571Reassembler.Frame, bytes: ArraySlice<UInt8>)] = []
        var position = 0
        var step = 0
        var state = UInt32(seed) | 0x100
        while position < stream.count {
            // Piece sizes from a small LCG: mostly small, sometimes up to a whole TCP read.
            state = state &* 1_103_515_245 &+ 12_345
            let size = (seed & 0x10 != 0 && step % 7 == 6) ? 4096 : 1 + Int((state >> 16) % (seed & 0x08 != 0 ? 5 : 300))
            step += 1
            let piece = min(size, stream.count - position)
            let read = reader.fill { free in
                let count = min(piece, free.count)
                free.copyMemory(from: UnsafeRawBufferPointer(rebasing: stream[position..<position + count]))
                return count
            }
            require(read > 0, "the reassembler left no room for a read with \(reader.buffered) bytes buffered")
            position += read
            while let frame = reader.next(into: destination) {
                switch frame {
                case .packet(let length): got.append((frame, Array(destination[0..<length])[...]))
                case .tooLarge: got.append((frame, []))
                }
            }
        }
        require(got.count == expected.count, "reassembled \(got.count) frames, the stream holds \(expected.count)")
        for (a, b) in zip(got, expected) { require(a.frame == b.frame && a.bytes == b.bytes, "a reassembled frame differs") }
        require(reader.buffered == stream.count - offset, "the reassembler keeps \(reader.buffered) bytes, \(stream.count - offset) are unfinished")
        let (high, low) = RFC4571Reassembler.header(length: stream.count % 65536)
        require(Int(high) << 8 | Int(low) == stream.count % 65536, "frame header round trip")
    }
}
