import HummingbirdBcrypt

/// Meeting passwords, kept only as bcrypt hashes.
public enum PasswordHash {
    /// Cost 10 (2^10 rounds): about 50–100 ms per check on one core, which with the attempt limit
    /// makes guessing slow without making joining slow.
    public static let cost: UInt8 = 10
    /// bcrypt reads at most 72 bytes; longer passwords would be silently cut.
    public static let maximumBytes = 72

    public static func make(_ password: String) -> String { Bcrypt.hash(password, cost: cost) }

    public static func matches(_ password: String, hash: String) -> Bool {
        guard password.utf8.count <= maximumBytes else { return false }
        return Bcrypt.verify(password, hash: hash)
    }
}
