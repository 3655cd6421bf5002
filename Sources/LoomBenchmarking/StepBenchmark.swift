import Foundation
import LoomCompiler
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining
import LoomData

/// A compiled step of a `BenchmarkCase`, ready to run repeatedly: the plan, its executor, fixed
/// stand-in inputs and the analytic cost of one step.
public final class StepBenchmark {
    public let benchmarkCase: BenchmarkCase
    public let plan: Plan
    public let threads: Int
    /// Blocks rematerialised to meet a memory budget (empty for the fast plan).
    public let rematerialized: [String]
    /// The precision the step was compiled for.
    public let precision: PrecisionPolicy
    let executor: PlanExecutor
    let inputs: [String: HostTensor]

    /// Multiply-adds of one forward pass at the step's forward batch (matrix products only, the
    /// DiT paper's convention).
    public let forwardMACs: Int

    /// Compiles the case's step (with `memoryBudget`, the smallest rematerialisation that fits)
    /// and runs it once to warm up.
    public init(_ benchmarkCase: BenchmarkCase, threads: Int = Threading.defaultThreads,
                memoryBudget: Int? = nil, precision: PrecisionPolicy = .fp32) throws {
        self.benchmarkCase = benchmarkCase
        self.threads = threads
        self.precision = precision
        let model = try DiffusionTransformer(benchmarkCase.model)
        let compiled = try Self.compile(benchmarkCase, model: model, precision: precision, memoryBudget: memoryBudget)
        plan = compiled.plan
        rematerialized = compiled.budgetFit?.rematerialized ?? []
        forwardMACs = CostModel.total(of: try model.forwardGraph(batch: benchmarkCase.forwardBatch)).macs
        executor = try PlanExecutor(plan: plan, threads: threads)
        try SyntheticInputs.load(plan.graph, into: executor)
        let classes = benchmarkCase.model.numClasses
        let feed: [String: HostTensor]
        if benchmarkCase.kind == .train {
            feed = SyntheticInputs.inputs(plan.graph, classes: classes,
                                          scalars: Self.trainingConfig(benchmarkCase).optimizer.stepInputs(step: 1, lr: 1e-4)
                                            .merging(Self.trainingConfig(benchmarkCase).loss.runtimeInputs) { a, _ in a })
        } else {
            feed = SyntheticInputs.samplerStep(plan.graph, classes: classes)
        }
        inputs = feed
        try step()
    }

    /// The training configuration of a training case.
    static func trainingConfig(_ benchmarkCase: BenchmarkCase) -> TrainingConfig {
        TrainingConfig(model: benchmarkCase.model, loss: LossSettings(objective: .flowRepa, igLambda: 0.5),
                       batch: benchmarkCase.batch, steps: 1)
    }

    /// One step of `benchmarkCase` through the compiler pipeline.
    static func compile(_ benchmarkCase: BenchmarkCase, model: DiffusionTransformer, precision: PrecisionPolicy,
                        memoryBudget: Int?) throws -> Pipeline.Output {
        if benchmarkCase.kind == .train {
            var config = trainingConfig(benchmarkCase)
            config.precision = precision
            return try Trainer.compile(config, pipeline: Trainer.pipeline(config, memoryBudget: memoryBudget))
        }
        return try Pipeline.inference(precision: precision).compile(try stepGraph(benchmarkCase, model: model))
    }

    /// The source graph of one step of `benchmarkCase` (a training step's loss graph, before autodiff).
    public static func stepGraph(_ benchmarkCase: BenchmarkCase, model: DiffusionTransformer) throws -> Graph {
        switch benchmarkCase.kind {
        case .train:
            return try Trainer.lossGraph(trainingConfig(benchmarkCase))
        case .sampleIG, .sampleIGCFG:
            let cfg = benchmarkCase.kind == .sampleIGCFG
            let guidance = GuidanceSettings(mode: cfg ? .igCfg : .ig, weight: 1.5, cfgScale: 1.5)
            return try samplerStepGraph(model: model, batch: benchmarkCase.batch, guidance: guidance, cfg: cfg)
        }
    }

    /// Runs one step.
    public func step() throws { _ = try executor.run(inputs: inputs) }

    /// FLOPs of one step: 2 · forward MACs · passes (3 when training).
    public var stepFLOPs: Double { 2 * Double(forwardMACs) * Double(benchmarkCase.passes) }

    /// Bytes the plan holds: arena plus parameters, gradients and optimizer state.
    public var planBytes: Int { plan.memory.arenaBytes + plan.memory.parameterBytes }

    /// Times `repeats` steps after `warmup` more; returns the result with the process's peak RSS.
    public func measure(repeats: Int, warmup: Int = 1, roofline: Bool = true) throws -> StepBenchmarkResult {
        for _ in 0..<warmup { try step() }
        var times: [Double] = []
        for _ in 0..<max(1, repeats) {
            let start = DispatchTime.now().uptimeNanoseconds
            try step()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let median = times.sorted()[times.count / 2]
        let sgemm = roofline ? GemmRoofline.gemmGFLOPs(GemmRoofline.shapes(of: plan.graph), threads: threads,
                                                       precision: precision, kernels: executor.kernels) : nil
        return StepBenchmarkResult(
            impl: rematerialized.isEmpty ? "loom" : "loom-lean", case: benchmarkCase.name,
            timesMs: times.map { $0 * 1000 }, medianMs: median * 1000,
            imagesPerS: Double(benchmarkCase.batch) / median, gflopsPerS: stepFLOPs / median / 1e9,
            forwardGMACs: Double(forwardMACs) / 1e9, sgemmGFLOPsPerS: sgemm,
            peakRSSMiB: Double(ResourceUsage.peakResidentBytes) / 1_048_576,
            planMiB: Double(planBytes) / 1_048_576, threads: threads, rematerializedBlocks: rematerialized.count,
            precision: precision.rawValue, kernels: executor.kernels.description)
    }
}

/// One benchmark's figures, in the JSON shape the side-by-side script reads (shared with the
/// PyTorch peer).
public struct StepBenchmarkResult: Codable, Sendable {
    public var impl: String
    public var `case`: String
    public var timesMs: [Double]
    public var medianMs: Double
    public var imagesPerS: Double
    public var gflopsPerS: Double
    public var forwardGMACs: Double
    /// The GEMM alone (the implementation the step uses, in its precision) on the plan's GEMM
    /// shapes, measured in the same process: the floor of the step's GEMM time.
    public var sgemmGFLOPsPerS: Double?
    public var peakRSSMiB: Double
    public var planMiB: Double
    public var threads: Int
    public var rematerializedBlocks: Int
    /// `fp32` or `bf16`.
    public var precision: String
    /// The ISA and GEMM kernels chosen for this CPU (`KernelSelection.description`).
    public var kernels: String

    enum CodingKeys: String, CodingKey {
        case impl, `case`, threads, precision, kernels
        case timesMs = "times_ms", medianMs = "median_ms", imagesPerS = "images_per_s", gflopsPerS = "gflops_per_s"
        case forwardGMACs = "forward_gmacs", sgemmGFLOPsPerS = "sgemm_gflops_per_s", peakRSSMiB = "peak_rss_mib"
        case planMiB = "plan_mib", rematerializedBlocks = "rematerialized_blocks"
    }

    /// Achieved GFLOP/s as a fraction of sgemm's on the same shapes.
    public var rooflineFraction: Double? { sgemmGFLOPsPerS.map { gflopsPerS / $0 } }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    /// One readable line.
    public var summary: String {
        var line = String(format: "%@ %@ (%@): median %.1f ms, %.2f img/s, %.1f GFLOP/s", impl, self.case, precision,
                          medianMs, imagesPerS, gflopsPerS)
        if let s = sgemmGFLOPsPerS {
            line += String(format: " (%.0f%% of the GEMM alone, %.1f on these shapes)", 100 * gflopsPerS / s, s)
        }
        line += String(format: ", peak RSS %.0f MiB, plan %.0f MiB", peakRSSMiB, planMiB)
        if rematerializedBlocks > 0 { line += ", \(rematerializedBlocks) blocks rematerialised" }
        return line + "\n" + kernels
    }
}

/// The process's resource counters.
public enum ResourceUsage {
    /// Peak resident set size of this process so far, in bytes.
    public static var peakResidentBytes: Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss) * 1024
    }
}
