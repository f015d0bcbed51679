import COpenSSL

/// Random tokens for ICE credentials and ids (RFC 8445 §5.3: ufrag ≥ 4, pwd ≥ 22 ice-chars).
public enum RandomToken {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)

    /// OpenSSL's CSPRNG for the whole token: SystemRandomNumberGenerator makes a getrandom() call
    /// per 8 bytes, which was a fifth of the SFU's negotiation time in a 200-person meeting. Bytes at or above
    /// 248 (4 × 62) are skipped so every character is equally likely.
    public static func make(length: Int) -> String {
        var token: [UInt8] = []
        token.reserveCapacity(length)
        var bytes = [UInt8](repeating: 0, count: length + length / 4 + 8)
        while token.count < length {
            fillRandom(&bytes)
            for byte in bytes where byte < 248 && token.count < length { token.append(alphabet[Int(byte % 62)]) }
        }
        return String(decoding: token, as: UTF8.self)
    }

    private static func fillRandom(_ bytes: inout [UInt8]) {
        let count = Int32(bytes.count)
        let status = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, count) }
        precondition(status == 1, "OpenSSL's random generator failed")
    }
}
