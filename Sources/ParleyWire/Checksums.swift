import COpenSSL
import ParleyBase

/// CRC-32 (ISO 3309, as STUN's FINGERPRINT uses it).
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}

/// HMAC-SHA1 through the system OpenSSL (STUN MESSAGE-INTEGRITY, RFC 8489 §14.5).
public enum HMACSHA1 {
    public static func authenticate(_ message: UnsafeRawBufferPointer, key: [UInt8]) -> [UInt8] {
        OpenSSLRuntime.initialize()
        var out = [UInt8](repeating: 0, count: 20)
        var outLength: UInt32 = 20
        key.withUnsafeBytes { keyBytes in
            out.withUnsafeMutableBytes { outBytes in
                _ = HMAC(EVP_sha1(), keyBytes.baseAddress, Int32(keyBytes.count),
                         message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count,
                         outBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), &outLength)
            }
        }
        return out
    }
}

/// Constant-time comparison for authenticators.
public func constantTimeEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for (x, y) in zip(a, b) { difference |= x ^ y }
    return difference == 0
}
