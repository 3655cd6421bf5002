// swift-tools-version:6.0
import PackageDescription

/// Loom: an ahead-of-time dataflow-graph compiler and runtime for diffusion transformers
/// trained and sampled with Internal Guidance.
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-fopenmp", "-march=x86-64-v3"])]

let package = Package(
    name: "Loom",
    products: [
        .executable(name: "loom", targets: ["loom"]),
        .library(name: "Loom", targets: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomDiffusion"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        // oneDNN (Debian ships no pkg-config file for it; headers and library are on the default paths).
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // libomp is linked before oneDNN's libgomp is loaded, so oneDNN's OpenMP calls bind to
        // LLVM's runtime: one thread pool in the process (Docs/architecture.md).
        .target(name: "CLoomKernels", dependencies: ["CDNNL"], path: "Sources/CLoomKernels",
                cSettings: kernelFlags,
                linkerSettings: [.linkedLibrary("omp5"), .linkedLibrary("dnnl"), .linkedLibrary("m")]),
        .target(name: "LoomIR", path: "Sources/LoomIR"),
        .target(name: "LoomCompiler", dependencies: ["LoomIR", "LoomRuntime"], path: "Sources/LoomCompiler"),
        .target(name: "LoomRuntime", dependencies: ["LoomIR", "CLoomKernels", "COpenBLAS"],
                path: "Sources/LoomRuntime"),
        .target(name: "LoomGraphs", dependencies: ["LoomIR"], path: "Graphs"),
        .target(name: "LoomDiffusion",
                dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "CZlib", "CPNG", "COpenBLAS"],
                path: "Sources/LoomDiffusion"),
        .executableTarget(name: "loom",
                          dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomDiffusion",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/loom"),
        .testTarget(name: "LoomIRTests", dependencies: ["LoomIR", "LoomGraphs"], path: "Tests/LoomIRTests"),
        .testTarget(name: "LoomRuntimeTests", dependencies: ["LoomIR", "LoomRuntime", "CLoomKernels"],
                    path: "Tests/LoomRuntimeTests"),
        .testTarget(name: "LoomGraphsTests", dependencies: ["LoomIR", "LoomGraphs", "LoomRuntime"],
                    path: "Tests/LoomGraphsTests"),
        .testTarget(name: "LoomCompilerTests", dependencies: ["LoomIR", "LoomCompiler", "LoomGraphs", "LoomRuntime"],
                    path: "Tests/LoomCompilerTests"),
        .testTarget(name: "LoomDiffusionTests",
                    dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomDiffusion"],
                    path: "Tests/LoomDiffusionTests"),
    ],
    swiftLanguageModes: [.v5]
)
