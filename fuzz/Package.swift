// swift-tools-version:6.1
// libFuzzer executables over Parley's network parsers (Sources/ParleyFuzzTargets). A package of
// its own so that only it is built with `-sanitize=fuzzer,address`; `scripts/fuzz.sh` (`make fuzz`)
// builds and runs it, `make test` replays its corpora without it.
//
// Two executables, because libFuzzer scans the coverage counters of all instrumented code after
// every input: `parley-fuzz-media` links the media plane alone (STUN, RTP, RTCP, SDP, RFC 4571)
// and runs ten times as many inputs a second as `parley-fuzz`, which has every target.
import PackageDescription

let package = Package(
    name: "parley-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "parley", path: ".."),
    ],
    targets: [
        .target(name: "FuzzDriver"),
        .executableTarget(
            name: "parley-fuzz",
            dependencies: ["FuzzDriver", .product(name: "ParleyFuzzTargets", package: "parley")]
        ),
        .executableTarget(
            name: "parley-fuzz-media",
            dependencies: ["FuzzDriver", .product(name: "ParleyMediaFuzzTargets", package: "parley")]
        ),
    ]
)
