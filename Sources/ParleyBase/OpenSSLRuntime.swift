import COpenSSL

/// OpenSSL's process-wide set-up, done once before any other OpenSSL call.
public enum OpenSSLRuntime {
    private static let ready: Bool = {
        // Without OPENSSL_INIT_NO_ATEXIT, exit() runs OPENSSL_cleanup, which must not run while
        // another thread still uses OpenSSL. Media threads are joined before exit; this covers
        // any thread that is not (a start that failed half-way, a test's own threads).
        OPENSSL_init_ssl(UInt64(OPENSSL_INIT_NO_ATEXIT) | UInt64(OPENSSL_INIT_LOAD_SSL_STRINGS) | UInt64(OPENSSL_INIT_LOAD_CRYPTO_STRINGS), nil) == 1
    }()

    /// Initialises OpenSSL without its exit handler; safe to call from any thread, any number of times.
    @discardableResult
    public static func initialize() -> Bool { ready }
}
