// swift-tools-version:6.1
// Micro-benchmarks (ordo-one/benchmark) of Parley's per-packet work, counting allocations.
// A package of its own so that `make test` never builds the benchmark tooling; `make bench` runs it.
import PackageDescription

let package = Package(
    name: "parley-micro",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "parley", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ParleyMicro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ParleyBase", package: "parley"),
                .product(name: "ParleyWire", package: "parley"),
                .product(name: "ParleyTransport", package: "parley"),
                .product(name: "ParleyMediaAPI", package: "parley"),
                .product(name: "ParleySFU", package: "parley"),
                .product(name: "ParleyLoad", package: "parley"),
            ],
            path: "Benchmarks/ParleyMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
