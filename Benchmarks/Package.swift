// swift-tools-version:6.1
import PackageDescription

/// Loom's step benchmarks on ordo-one/benchmark: a package of its own, so that `swift test` in
/// the repository root never builds the benchmark framework. Run from this folder:
/// `swift package benchmark` (see ../Docs/performance.md).
let package = Package(
    name: "LoomBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
        .package(name: "Loom", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "LoomSteps",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Loom", package: "Loom"),
            ],
            path: "Benchmarks/LoomSteps",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
