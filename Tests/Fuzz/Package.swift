// swift-tools-version:6.0
import PackageDescription

/// Coverage-guided fuzz targets (libFuzzer) for Loom's loaders. Not part of the main build: run
/// `bash scripts/fuzz.sh SECONDS` from the repository root (it builds this package with
/// `-sanitize=fuzzer,address` and runs every target over its committed corpus).
let fuzzTargets = ["FuzzSafeTensors", "FuzzIDX", "FuzzPlan", "FuzzIRText", "FuzzCheckpointMetadata",
                   "FuzzTorchCheckpoint", "FuzzVAEWeights", "FuzzImage"]

let package = Package(
    name: "LoomFuzz",
    dependencies: [.package(name: "Loom", path: "../..")],
    targets: [.target(name: "FuzzDriver", path: "Sources/FuzzDriver")] + fuzzTargets.map { name in
        .executableTarget(name: name, dependencies: ["FuzzDriver", .product(name: "Loom", package: "Loom")],
                          path: "Sources/\(name)")
    },
    swiftLanguageModes: [.v5]
)
