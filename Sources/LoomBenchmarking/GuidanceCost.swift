import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTraining
import LoomSampling

/// Measures one sampler step of each guidance mode on compiled plans, side by side in one process:
/// median seconds per step and the ratio to the unguided step (whose plan has no IG-head launches:
/// dead-code elimination drops the head when nothing reads it).
public enum GuidanceCost {
    /// One guidance mode's measured step: median seconds, ratio to the unguided step, seconds per block.
    public struct Entry {
        public var mode: GuidanceMode
        public var seconds: Double
        public var ratio: Double
        /// Seconds per block (embedders, blocks.N, ig_head, final_layer, …) of one step.
        public var blocks: [(String, Double)]
        /// The tail after the network (guidance and solver update, scope `samplerScope`): median
        /// seconds per step and launches per step.
        public var tailSeconds: Double
        public var tailLaunches: Int
    }

    /// `interleaveLimit`: bytes the plans may take together to be timed in interleaved rounds
    /// (default half the machine's memory); above it each mode is timed alone in turn.
    public static func measure(model config: ModelConfig, weights: [String: HostTensor],
                               guide: (ModelConfig, [String: HostTensor])? = nil, batch: Int,
                               threads: Int = Threading.defaultThreads, repeats: Int = 5,
                               modes: [GuidanceMode]? = nil, interleaveLimit: Int? = nil) throws -> [Entry] {
        let model = try DiffusionTransformer(config)
        let guideModel = try guide.map { try DiffusionTransformer($0.0) }
        var parameters = weights
        for (name, value) in guide?.1 ?? [:] { parameters["guide." + name] = value }
        var candidates: [GuidanceMode] = modes ?? [.none, .ig, .cfg, .igCfg, .autoguidance, .autoguidanceCfg]
        if config.igLayer == nil { candidates.removeAll { $0.usesIG } }
        if guide == nil { candidates.removeAll { $0.usesGuideNetwork } }
        // Compile every plan first, then time them in rounds so machine noise hits all alike. When the
        // plans do not fit in memory together (XL models: each holds its parameters and their prepared
        // GEMM copies), each mode is compiled, timed and released in turn instead.
        let graphs = try candidates.map { mode -> (GuidanceMode, Graph) in
            let settings = GuidanceSettings(mode: mode, weight: 1.5, cfgScale: 1.5)
            return (mode, try samplerStepGraph(model: model, guideModel: mode.usesGuideNetwork ? guideModel : nil,
                                               batch: batch, guidance: settings, cfg: mode.usesCFG))
        }
        var plans: [Plan] = []
        var together = 0
        for (_, graph) in graphs {
            let plan = try Pipeline.inference().plan(graph)
            together += plan.memory.arenaBytes + 2 * plan.memory.parameterBytes  // parameters + their prepared copies
            plans.append(plan)
        }
        let interleave = together <= (interleaveLimit ?? (MachineMemory.physicalBytes ?? Int.max) / 2)
        var times = [[Double]](repeating: [], count: graphs.count)
        var blockSeconds = [[String: Double]](repeating: [:], count: graphs.count)
        var tailTimes = [[Double]](repeating: [], count: graphs.count)
        var attributions: [BlockAttribution] = []
        var tailCounts: [Int] = []
        func load(_ index: Int) throws -> (PlanExecutor, [String: HostTensor], Set<Int>) {
            let plan = plans[index]
            let executor = try PlanExecutor(plan: plan, threads: threads)
            try executor.setParameters(parameters, ignoringExtra: true)
            let inputs = SyntheticInputs.samplerStep(graphs[index].1, classes: config.numClasses)
            _ = try executor.run(inputs: inputs)
            return (executor, inputs, Set(executor.launches.filter { plan.graph.nodes[$0].scope.hasPrefix(samplerScope) }))
        }
        func time(_ index: Int, _ executor: PlanExecutor, _ inputs: [String: HostTensor], _ tail: Set<Int>) throws {
            let attribution = attributions[index]
            var perBlock: [String: Double] = [:]
            var tailTime = 0.0
            executor.launchTimer = { id, s in
                perBlock[attribution.labels[id], default: 0] += s
                if tail.contains(id) { tailTime += s }
            }
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try executor.run(inputs: inputs)
            times[index].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            executor.launchTimer = nil
            tailTimes[index].append(tailTime)
            for (block, s) in perBlock { blockSeconds[index][block, default: 0] += s / Double(repeats) }
        }
        for plan in plans { attributions.append(BlockAttribution(graph: plan.graph)) }
        if interleave {
            let loaded = try plans.indices.map { try load($0) }
            tailCounts = loaded.map(\.2.count)
            for _ in 0..<repeats {
                for (index, entry) in loaded.enumerated() { try time(index, entry.0, entry.1, entry.2) }
            }
        } else {
            for index in plans.indices {
                let (executor, inputs, tail) = try load(index)
                tailCounts.append(tail.count)
                for _ in 0..<repeats { try time(index, executor, inputs, tail) }
            }
        }
        let medians = times.map { $0.sorted()[$0.count / 2] }
        let base = medians.first ?? 1
        return graphs.indices.map { i in
            let order = attributions[i].blocks
            return Entry(mode: graphs[i].0, seconds: medians[i], ratio: medians[i] / base,
                         blocks: order.compactMap { b in blockSeconds[i][b].map { (b, $0) } },
                         tailSeconds: tailTimes[i].sorted()[tailTimes[i].count / 2], tailLaunches: tailCounts[i])
        }
    }
}
