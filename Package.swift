// swift-tools-version:6.0
import PackageDescription

/// Loom: an ahead-of-time dataflow-graph compiler and runtime for diffusion transformers
/// trained and sampled with Internal Guidance.
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-fopenmp", "-march=x86-64-v3"])]

let package = Package(
    name: "Loom",
    products: [
        .executable(name: "loom", targets: ["loom"]),
        .library(name: "Loom", targets: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion",
                                          "LoomTraining", "LoomSampling", "LoomEvaluation", "LoomExperiments",
                                          "LoomBenchmarking", "LoomImport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSystemZlib", path: "Sources/CSystemZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        // libjpeg-turbo's TurboJPEG API (JPEG input of `loom encode`).
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"])]),
        // oneDNN (Debian ships no pkg-config file for it; headers and library are on the default paths).
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // libomp is linked before oneDNN's libgomp is loaded, so oneDNN's OpenMP calls bind to
        // LLVM's runtime: one thread pool in the process (Docs/architecture.md).
        .target(name: "CLoomKernels", dependencies: ["CDNNL"], path: "Sources/CLoomKernels",
                cSettings: kernelFlags,
                linkerSettings: [.linkedLibrary("omp5"), .linkedLibrary("dnnl"), .linkedLibrary("m")]),
        // Open MPI's C API (pkg-config ompi-c) for data-parallel training.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .target(name: "LoomIR", path: "Sources/LoomIR"),
        // The ranks of a data-parallel run: the `Communicator` executors are given, over MPI or one process.
        .target(name: "LoomDistributed", dependencies: ["CMPI"], path: "Sources/LoomDistributed"),
        .target(name: "LoomCompiler", dependencies: ["LoomIR", "LoomRuntime"], path: "Sources/LoomCompiler"),
        .target(name: "LoomRuntime", dependencies: ["LoomIR", "LoomDistributed", "CLoomKernels", "COpenBLAS"],
                path: "Sources/LoomRuntime"),
        .target(name: "LoomGraphs", dependencies: ["LoomIR"], path: "Graphs"),
        // The diffusion stack, bottom up: data and images; the method (objectives, schedules, losses,
        // golden checks); training; sampling; evaluation; experiments and benchmarks on top.
        .target(name: "LoomData", dependencies: ["LoomRuntime", "CSystemZlib", "CPNG", "CTurboJPEG"], path: "Sources/LoomData"),
        .target(name: "LoomDiffusion",
                dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData"],
                path: "Sources/LoomDiffusion"),
        .target(name: "LoomTraining",
                dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion",
                               "LoomDistributed"],
                path: "Sources/LoomTraining"),
        .target(name: "LoomSampling",
                dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion",
                               "LoomTraining"],
                path: "Sources/LoomSampling"),
        .target(name: "LoomEvaluation",
                dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData", "COpenBLAS"],
                path: "Sources/LoomEvaluation"),
        // PyTorch checkpoints: a restricted unpickler over ZIPFoundation's zip reader.
        .target(name: "LoomImport",
                dependencies: ["LoomIR", "LoomRuntime", "LoomGraphs", "LoomData",
                               .product(name: "ZIPFoundation", package: "ZIPFoundation")],
                path: "Sources/LoomImport"),
        .target(name: "LoomExperiments",
                dependencies: ["LoomIR", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion", "LoomTraining",
                               "LoomSampling", "LoomEvaluation"],
                path: "Sources/LoomExperiments"),
        .target(name: "LoomBenchmarking",
                dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion",
                               "LoomTraining", "LoomSampling"],
                path: "Sources/LoomBenchmarking"),
        .executableTarget(name: "loom",
                          dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion",
                                         "LoomTraining", "LoomSampling", "LoomEvaluation", "LoomExperiments", "LoomBenchmarking",
                                         "LoomImport", "LoomDistributed",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/loom"),
        // Helpers shared by the test targets (temporary folders, synthetic data).
        .target(name: "LoomTestSupport",
                dependencies: ["LoomIR", "LoomRuntime", "LoomGraphs", "LoomData"],
                path: "Tests/LoomTestSupport"),
        .testTarget(name: "LoomIRTests", dependencies: ["LoomIR", "LoomGraphs", "LoomTestSupport"], path: "Tests/LoomIRTests"),
        .testTarget(name: "LoomRuntimeTests", dependencies: ["LoomIR", "LoomRuntime", "CLoomKernels", "LoomTestSupport"],
                    path: "Tests/LoomRuntimeTests"),
        .testTarget(name: "LoomGraphsTests", dependencies: ["LoomIR", "LoomGraphs", "LoomRuntime"],
                    path: "Tests/LoomGraphsTests"),
        // The compiler's passes, lowering and plans, exercised on zoo models and training steps.
        .testTarget(name: "LoomCompilerTests",
                    dependencies: ["LoomIR", "LoomCompiler", "LoomGraphs", "LoomRuntime", "LoomData", "LoomDiffusion",
                                   "LoomTraining", "LoomDistributed", "LoomTestSupport"],
                    path: "Tests/LoomCompilerTests"),
        .testTarget(name: "LoomDataTests", dependencies: ["LoomData", "LoomRuntime", "LoomTestSupport"],
                    path: "Tests/LoomDataTests"),
        // The method against independent references (naive transformer, finite differences, the
        // official sampler loop written plainly).
        .testTarget(name: "LoomDiffusionTests",
                    dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion",
                                   "LoomTraining", "LoomSampling", "LoomTestSupport"],
                    path: "Tests/LoomDiffusionTests"),
        .testTarget(name: "LoomTrainingTests",
                    dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion",
                                   "LoomTraining", "LoomTestSupport"],
                    path: "Tests/LoomTrainingTests"),
        .testTarget(name: "LoomSamplingTests",
                    dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion",
                                   "LoomTraining", "LoomSampling", "LoomImport", "LoomTestSupport"],
                    path: "Tests/LoomSamplingTests"),
        .testTarget(name: "LoomEvaluationTests",
                    dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomData", "LoomEvaluation", "LoomTestSupport"],
                    path: "Tests/LoomEvaluationTests"),
        .testTarget(name: "LoomExperimentsTests",
                    dependencies: ["LoomIR", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion", "LoomTraining",
                                   "LoomSampling", "LoomEvaluation", "LoomExperiments", "LoomTestSupport"],
                    path: "Tests/LoomExperimentsTests"),
        .testTarget(name: "LoomBenchmarkingTests",
                    dependencies: ["LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomDiffusion", "LoomTraining",
                                   "LoomSampling", "LoomBenchmarking"],
                    path: "Tests/LoomBenchmarkingTests"),
        .testTarget(name: "LoomImportTests",
                    dependencies: ["LoomIR", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion", "LoomImport",
                                   "LoomTestSupport"],
                    path: "Tests/LoomImportTests"),
        // The command line end to end: errors, hostile files, fuzz corpora, reports.
        .testTarget(name: "loomTests",
                    dependencies: ["loom", "LoomIR", "LoomCompiler", "LoomRuntime", "LoomGraphs", "LoomData", "LoomDiffusion",
                                   "LoomTraining", "LoomSampling", "LoomEvaluation", "LoomImport", "LoomTestSupport"],
                    path: "Tests/loomTests"),
    ],
    swiftLanguageModes: [.v5]
)
