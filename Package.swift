// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "parley",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "parley", targets: ["parley"]),
        .executable(name: "parley-ceiling", targets: ["parley-ceiling"]),
        // For the micro-benchmarks in bench/micro, a package of their own.
        .library(name: "ParleyBase", targets: ["ParleyBase"]),
        .library(name: "ParleyWire", targets: ["ParleyWire"]),
        .library(name: "ParleyTransport", targets: ["ParleyTransport"]),
        .library(name: "ParleyMediaAPI", targets: ["ParleyMediaAPI"]),
        .library(name: "ParleySFU", targets: ["ParleySFU"]),
        .library(name: "ParleyLoad", targets: ["ParleyLoad"]),
        // For the libFuzzer executables in fuzz/, a package of its own (built with -sanitize=fuzzer).
        .library(name: "ParleyFuzzTargets", targets: ["ParleyFuzzTargets"]),
        .library(name: "ParleyMediaFuzzTargets", targets: ["ParleyMediaFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.2.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSRTP", pkgConfig: "libsrtp2", providers: [.apt(["libsrtp2-dev"])]),
        .target(name: "CParleySocket"),
        // Below everything: clocks, PeerAddress, RandomToken, joined threads and OpenSSL's one-time set-up.
        .target(name: "ParleyBase", dependencies: ["COpenSSL"], swiftSettings: swiftSettings),
        .target(name: "ParleyWire", dependencies: ["ParleyBase", "COpenSSL"], swiftSettings: swiftSettings),
        .target(
            name: "ParleyTransport",
            dependencies: ["ParleyBase", "ParleyWire", "COpenSSL", "CSRTP"],
            swiftSettings: swiftSettings
        ),
        // What the other planes know of the media plane: the MediaServer protocol and its types.
        .target(name: "ParleyMediaAPI", dependencies: ["ParleyWire"], swiftSettings: swiftSettings),
        // The media core, sans I/O: no socket, no thread, no clock of its own.
        .target(name: "ParleySFU", dependencies: ["ParleyBase", "ParleyWire", "ParleyTransport", "ParleyMediaAPI"], swiftSettings: swiftSettings),
        // The SFU process: worker loops that own the sockets (UDP mmsg batches, ICE-TCP) and drive the core.
        .target(
            name: "ParleyMediaNode",
            dependencies: [
                "ParleyBase", "ParleyWire", "ParleyTransport", "ParleyMediaAPI", "ParleySFU", "CParleySocket",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ParleyRedis",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ParleyAccess",
            dependencies: [
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ParleyControl",
            dependencies: ["ParleyAccess", "ParleyBase", "ParleyMediaAPI", "ParleyWire", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ParleyServer",
            dependencies: [
                "ParleyAccess", "ParleyBase", "ParleyControl", "ParleyMediaAPI", "ParleyMediaNode", "ParleyCluster", "ParleyRedis",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ParleyLoad",
            dependencies: [
                "ParleyBase", "ParleyWire", "ParleyTransport", "CParleySocket",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "parley",
            dependencies: [
                "ParleyServer", "ParleyLoad", "ParleyAccess", "ParleyCluster", "ParleyRedis", "ParleyMediaAPI", "ParleyMediaNode",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "parley-ceiling", dependencies: ["CParleySocket", "ParleyBase", "ParleyTransport"], swiftSettings: swiftSettings),
        .testTarget(name: "ParleyBaseTests", dependencies: ["ParleyBase"], swiftSettings: swiftSettings),
        .testTarget(name: "ParleyWireTests", dependencies: ["ParleyWire", "ParleyTestSupport"], exclude: ["Fixtures"], swiftSettings: swiftSettings),
        .testTarget(name: "ParleyTransportTests", dependencies: ["ParleyBase", "ParleyTransport", "ParleyTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ParleyLoadTests", dependencies: ["ParleyLoad", "ParleyTestSupport", "ParleyBase", "ParleyMediaAPI", "ParleySFU", "ParleyMediaNode", "ParleyTransport", "ParleyWire", .product(name: "Histogram", package: "hdrhistogram-swift")], swiftSettings: swiftSettings),
        .target(
            name: "ParleyCluster",
            dependencies: ["ParleyRedis", "ParleyBase", "ParleyMediaAPI", "ParleyControl", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Helpers the tests share (a real redis-server on a free port); never linked into parley.
        .target(name: "ParleyTestSupport", dependencies: ["ParleyRedis", "ParleyBase", "ParleySFU"], path: "Tests/ParleyTestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "ParleyRedisTests", dependencies: ["ParleyRedis", "ParleyTestSupport", .product(name: "NIOCore", package: "swift-nio")],
                    swiftSettings: swiftSettings),
        .testTarget(name: "ParleyClusterTests", dependencies: ["ParleyCluster", "ParleyRedis", "ParleyTestSupport", "ParleyControl", "ParleyMediaAPI",
                                                           .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(name: "ParleyControlTests", dependencies: ["ParleyControl", "ParleyMediaAPI", "ParleyBase", "ParleyAccess", "ParleyTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ParleySFUTests", dependencies: ["ParleySFU", "ParleyMediaNode", "ParleyBase", "ParleyMediaAPI", "ParleyTransport", "ParleyWire", "ParleyTestSupport"], swiftSettings: swiftSettings),
        // One entry point per network parser: fuzz/ fuzzes them, ParleyFuzzTargetsTests replays fuzz/corpus and fuzz/regressions.
        // (The media plane's apart: without SwiftNIO and Hummingbird linked in, libFuzzer runs them ten times faster.)
        .target(name: "ParleyMediaFuzzTargets", dependencies: ["ParleyBase", "ParleyWire", "ParleyTransport", "ParleyMediaAPI", "ParleySFU"], swiftSettings: swiftSettings),
        .target(
            name: "ParleyFuzzTargets",
            dependencies: [
                "ParleyMediaFuzzTargets", "ParleyWire", "ParleyMediaAPI", "ParleyControl", "ParleyRedis", "ParleyServer",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "ParleyFuzzTargetsTests", dependencies: ["ParleyFuzzTargets"], swiftSettings: swiftSettings),
    ]
)
