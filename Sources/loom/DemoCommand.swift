import ArgumentParser
import Foundation
import LoomBenchmarking
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining

/// `loom demo`: Loom's main job on an embedded default — parity check, a short SiT+IG training run
/// on Fashion-MNIST, IG+CFG sampling into a PNG grid, and a per-block profile of the training step.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Main job: check parity, train a small SiT+IG on Fashion-MNIST, sample with IG+CFG, write a PNG grid and a profile.")

    @Option(help: "Folder holding the golden fixtures to verify.") var fixtures = "Tests/Fixtures"
    @Option(help: "Run folder.") var out = "runs/demo"
    @Option(help: "Training steps (batch 32).") var steps = 800
    @Option(help: "Threads (default: LOOM_THREADS or all cores).") var threads: Int?

    func validate() throws {
        try FlagCheck.count(steps, "--steps", max: 10_000_000)
        if let threads { try FlagCheck.count(threads, "--threads", max: Threading.maxThreads) }
    }
    @Option(help: "Fashion-MNIST folder.") var dataRoot = Dataset.fashionMNISTDefaultRoot
    @Option(help: "Operand precision of the matrix products in training, sampling and the profile: \(PrecisionPolicy.spelled).")
    var precision: PrecisionPolicy = .fp32

    /// The embedded default: SiT, hidden 128, depth 6, 4 heads, patch 4 on 32×32 (64 tokens), IG head after block 2.
    static func model() -> ModelConfig {
        ModelConfig(backbone: .sit, inputSize: 32, inChannels: 1, learnSigma: false, patch: 4, hidden: 128, depth: 6,
                    heads: 4, numClasses: 10, igLayer: 2)
    }

    func run() throws {
        let threadCount = try Threading.resolve(threads)
        print("kernels: \(KernelSelection.current)")
        print("== 1/4 golden parity (max|a − b| / max|golden| ≤ 1e-4, compiled plans)")
        let files = ["dit_tiny", "sit_ig_tiny", "lightning_ig_tiny"].map { "\(fixtures)/\($0).safetensors" }
        try CheckGoldenCommand.parse(files + ["--rtol", "1e-4", "--compiled"]).run()

        print("\n== 2/4 training \(Self.model().displayName) on Fashion-MNIST")
        var optimizer = AdamWSettings()
        optimizer.emaDecay = 0.999
        let config = TrainingConfig(model: Self.model(), loss: LossSettings(objective: .flowRepa, igLambda: 0.5),
                                    optimizer: optimizer, batch: 32, steps: steps, learningRate: 5e-4,
                                    warmupSteps: 50, seed: 0, labelDropout: 0.1, timeSampling: .uniform,
                                    precision: precision == .bf16 ? .bf16 : nil)
        let dataset = try Dataset.fashionMNIST(root: dataRoot, split: .train, padTo: 32)
        let run = TrainingRun(directory: out, checkpointEvery: 200, logEvery: 50)
        let checkpoint = run.checkpointPath
        var state: TrainingState?
        let plan = try Trainer.trainingPlan(config)
        if FileManager.default.fileExists(atPath: checkpoint),
           let previous = try? TrainingState.load(path: checkpoint, graph: plan.graph),
           previous.1 == config {
            state = previous.0
            print("continuing from \(checkpoint) at step \(previous.0.step)")
        }
        let trainer = try Trainer(config: config, dataset: dataset, state: state, threads: threadCount, plan: plan)
        if try run.run(trainer, report: { print($0); fflush(stdout) }) == .interrupted { throw ExitCode(130) }

        print("\n== 3/4 sampling with IG (w 1.5) + CFG (s 1.5), Euler 25 steps, one row per class")
        try SampleCommand.parse(["--checkpoint", checkpoint, "--steps", "25", "--per-class", "8", "--batch", "40",
                                 "--guidance", "ig+cfg", "--ig-weight", "1.5", "--cfg-scale", "1.5",
                                 "--out", out, "--threads", "\(threadCount)", "--profile",
                                 "--precision", precision.rawValue]).run()

        print("\n== 4/4 profile of the compiled training step")
        try ProfileCommand.parse(["sit", "--patch", "4", "--hidden", "128", "--depth", "6", "--heads", "4",
                                  "--ig-layer", "2", "--batch", "32", "--input-size", "32", "--channels", "1",
                                  "--classes", "10", "--runs", "3", "--threads", "\(threadCount)",
                                  "--timeline-svg", out + "/memory.svg", "--timeline-csv", out + "/memory.csv",
                                  "--report", out + "/profile.txt", "--precision", precision.rawValue]).run()
        print("\noutputs in \(out): grid.png, samples.safetensors, checkpoint.safetensors, loss.csv, profile.txt, memory.svg")
    }
}
