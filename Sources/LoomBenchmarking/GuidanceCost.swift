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

    public static func measure(model config: ModelConfig, weights: [String: HostTensor],
                               guide: (ModelConfig, [String: HostTensor])? = nil, batch: Int,
                               threads: Int = Threading.defaultThreads, repeats: Int = 5,
                               modes: [GuidanceMode]? = nil) throws -> [Entry] {
        let model = try DiffusionTransformer(config)
        let guideModel = try guide.map { try DiffusionTransformer($0.0) }
        var parameters = weights
        for (name, value) in guide?.1 ?? [:] { parameters["guide." + name] = value }
        var candidates: [GuidanceMode] = modes ?? [.none, .ig, .cfg, .igCfg, .autoguidance, .autoguidanceCfg]
        if config.igLayer == nil { candidates.removeAll { $0.usesIG } }
        if guide == nil { candidates.removeAll { $0.usesGuideNetwork } }
        // Compile every plan first, then time them in rounds so machine noise hits all alike.
        var executors: [(GuidanceMode, PlanExecutor, [String: HostTensor], BlockAttribution, Set<Int>)] = []
        for mode in candidates {
            let settings = GuidanceSettings(mode: mode, weight: 1.5, cfgScale: 1.5)
            let graph = try samplerStepGraph(model: model, guideModel: mode.usesGuideNetwork ? guideModel : nil,
                                             batch: batch, guidance: settings, cfg: mode.usesCFG)
            let plan = try Pipeline.inference().plan(graph)
            let executor = try PlanExecutor(plan: plan, threads: threads)
            try executor.setParameters(parameters, ignoringExtra: true)
            let inputs = SyntheticInputs.samplerStep(graph, classes: config.numClasses)
            _ = try executor.run(inputs: inputs)
            let tail = executor.launches.filter { plan.graph.nodes[$0].scope.hasPrefix(samplerScope) }
            executors.append((mode, executor, inputs, BlockAttribution(graph: plan.graph), Set(tail)))
        }
        var times = [[Double]](repeating: [], count: executors.count)
        var blockSeconds = [[String: Double]](repeating: [:], count: executors.count)
        var tailTimes = [[Double]](repeating: [], count: executors.count)
        for _ in 0..<repeats {
            for (index, entry) in executors.enumerated() {
                let (_, executor, inputs, attribution, tail) = entry
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
        }
        let medians = times.map { $0.sorted()[$0.count / 2] }
        let base = medians.first ?? 1
        return executors.indices.map { i in
            let order = executors[i].3.blocks
            return Entry(mode: executors[i].0, seconds: medians[i], ratio: medians[i] / base,
                         blocks: order.compactMap { b in blockSeconds[i][b].map { (b, $0) } },
                         tailSeconds: tailTimes[i].sorted()[tailTimes[i].count / 2], tailLaunches: executors[i].4.count)
        }
    }
}
