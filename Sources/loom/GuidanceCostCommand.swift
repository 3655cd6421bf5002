import ArgumentParser
import Foundation
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining

/// `loom guidance-cost`: one compiled sampler step per guidance mode, timed side by side.
struct GuidanceCostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guidance-cost",
        abstract: "Time one compiled sampler step for none, IG, CFG, IG+CFG and autoguidance (alone and with CFG) on the same weights, and the tail after the network.",
        discussion: "Weights are random (cost does not depend on their values) unless --checkpoint is given. The autoguidance guide is the same model at --guide-depth blocks. Runs are interleaved; medians reported.")

    @OptionGroup var model: ModelOptions
    @Option(help: "Use this checkpoint's model and (EMA) weights instead.") var checkpoint: String?
    @Option(help: "Depth of the autoguidance guide model (default: half the depth).") var guideDepth: Int?
    @Option(help: "Timed runs per mode.") var repeats = 7
    @Option(help: "Threads (default: LOOM_THREADS or all cores).") var threads: Int?

    func validate() throws {
        try FlagCheck.count(repeats, "--repeats", max: 100_000)
        if let guideDepth { try FlagCheck.count(guideDepth, "--guide-depth", max: 1024) }
        if let threads { try FlagCheck.count(threads, "--threads", max: Threading.maxThreads) }
    }

    func run() throws {
        var config = try model.config()
        var weights: [String: HostTensor]
        if let checkpoint {
            let loaded = try CheckpointWeights.load(path: checkpoint, ema: true)
            config = loaded.config.model
            weights = loaded.weights
        } else {
            weights = SyntheticInputs.parameters(try DiffusionTransformer(config).forwardGraph(batch: 1))
        }
        var guideConfig = config
        guideConfig.igLayer = nil
        guideConfig.depth = guideDepth ?? max(1, config.depth / 2)
        let guideWeights = SyntheticInputs.parameters(try DiffusionTransformer(guideConfig).forwardGraph(batch: 1))
        let batch = model.batch
        print("\(config.displayName), batch \(batch), sampler step (forward + guidance + update, compiled), "
              + "guide \(guideConfig.displayName); \(repeats) runs per mode (interleaved when the plans fit in memory together), threads \(try Threading.resolve(threads))")
        let entries = try GuidanceCost.measure(model: config, weights: weights, guide: (guideConfig, guideWeights),
                                               batch: batch, threads: try Threading.resolve(threads),
                                               repeats: repeats)
        for entry in entries {
            print(String(format: "  %-13@ %9.2f ms   %.3f× none   tail %7.3f ms in %d launch(es)",
                         entry.mode.rawValue as NSString, entry.seconds * 1000, entry.ratio, entry.tailSeconds * 1000,
                         entry.tailLaunches))
        }
    }
}
