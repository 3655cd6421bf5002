import ArgumentParser
import Foundation
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining

/// `loom bench`: one benchmark case, timed, with its roofline and peak memory.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time a compiled training or sampler step of a benchmark case (median, img/s, GFLOP/s, GEMM-alone roofline, peak RSS, kernels).",
        discussion: """
            Cases: \(BenchmarkCase.all.map(\.name).joined(separator: ", ")). The models are SiT-S/B with the DiT \
            skeleton, 32×32×4 inputs and an IG head after block 4; weights and inputs are stand-ins (time does not \
            depend on them). The roofline is the step's own GEMM implementation alone (in its precision) on the plan's own GEMM shapes, measured in the same \
            process after the timed steps. Benchmarks/side-by-side.sh pairs these figures with PyTorch's.
            """)

    @Argument(help: "Benchmark case.") var name: String
    @Option(help: "Timed steps.") var repeats = 5
    @Option(help: "Untimed steps before timing (after the one warm-up run at load).") var warmup = 1
    @Option(help: "Threads (default: LOOM_THREADS or all cores).") var threads: Int?
    @Option(help: "Fit the plan into this many bytes (suffixes K, M, G: powers of 1024) by rematerialising blocks.")
    var memoryBudget: String?
    @Flag(help: "Skip the sgemm roofline measurement.") var noRoofline = false
    @Flag(help: "Print one JSON line instead of text.") var json = false
    @Option(help: "Operand precision of the matrix products: \(PrecisionPolicy.spelled).") var precision: PrecisionPolicy = .fp32

    func validate() throws {
        try FlagCheck.count(repeats, "--repeats", max: 1_000_000)
        try FlagCheck.count(warmup, "--warmup", min: 0, max: 1_000_000)
        if let threads { try FlagCheck.count(threads, "--threads", max: Threading.maxThreads) }
    }

    func run() throws {
        let benchmarkCase: BenchmarkCase
        do { benchmarkCase = try BenchmarkCase.named(name) } catch let error as DiffusionError {
            throw ValidationError(error.message)
        }
        let budget = try memoryBudget.map { try ByteCount.parse($0, flag: "--memory-budget") }
        let started = Date()
        let bench = try StepBenchmark(benchmarkCase, threads: try Threading.resolve(threads), memoryBudget: budget,
                                      precision: precision)
        if !json {
            print(String(format: "compiled and warmed %@ in %.1f s; timing %d steps", name, Date().timeIntervalSince(started), repeats))
        }
        let result = try bench.measure(repeats: repeats, warmup: warmup, roofline: !noRoofline)
        print(json ? result.json() : result.summary)
    }
}

/// Byte counts given on the command line.
enum ByteCount {
    /// `123`, `512K`, `1.5G` (binary multiples) → bytes.
    static func parse(_ text: String, flag: String) throws -> Int {
        let units: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024]
        var body = text.uppercased()
        if body.hasSuffix("IB") { body.removeLast(2) } else if body.hasSuffix("B") { body.removeLast() }
        var scale = 1.0
        if let last = body.last, let unit = units[last] {
            scale = unit
            body.removeLast()
        }
        guard let value = Double(body), value > 0, value.isFinite, value * scale < Double(1 << 60) else {
            throw ValidationError("\(flag): expected a positive byte count below 2^60 such as 900M or 1.2G, got '\(text)'")
        }
        return Int(value * scale)
    }
}
