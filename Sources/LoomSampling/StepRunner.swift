import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTraining

/// Runs one sampler step graph: the undoubled one, or with `cfg` the doubled (CFG) one. Inputs and
/// outputs are those of `samplerStepGraph` (`x`, `t`, `y`, `z`, `anchor`, `coef` → `x_next`).
public protocol StepRunner {
    func run(_ inputs: [String: HostTensor], cfg: Bool) throws -> [String: HostTensor]
}

/// A `StepRunner` on the `ReferenceExecutor`: holds the undoubled and (for CFG modes) the doubled step
/// graph and the parameters (`guide.…` keys for an autoguidance model).
public struct ReferenceStepRunner: StepRunner {
    public let plain: Graph
    public let doubled: Graph?
    public var parameters: [String: HostTensor]
    public let executor: ReferenceExecutor

    public init(plain: Graph, doubled: Graph?, parameters: [String: HostTensor],
                threads: Int = Threading.defaultThreads) {
        self.plain = plain
        self.doubled = doubled
        self.parameters = parameters
        executor = ReferenceExecutor(threads: threads)
    }

    /// Builds both step graphs of a zoo model for `guidance` (the doubled one only for CFG modes).
    public init(model: DiffusionTransformer, guideModel: DiffusionTransformer? = nil, batch: Int,
                guidance: GuidanceSettings, learnedVariance: Bool = false, parameters: [String: HostTensor],
                threads: Int = Threading.defaultThreads) throws {
        let (plain, doubled) = try samplerStepGraphs(model: model, guideModel: guideModel, batch: batch,
                                                     guidance: guidance, learnedVariance: learnedVariance)
        self.init(plain: plain, doubled: doubled, parameters: parameters, threads: threads)
    }

    /// Builds both step graphs around a pluggable network (tests, analytic fields).
    public init(batch: Int, sampleShape: [Int], numClasses: Int, guidance: GuidanceSettings,
                learnedVariance: Bool = false, network: @escaping StepNetwork, guideNetwork: StepNetwork? = nil,
                parameters: [String: HostTensor] = [:], threads: Int = Threading.defaultThreads) throws {
        func graph(_ cfg: Bool) throws -> Graph {
            try samplerStepGraph(name: cfg ? "sampler_step_cfg" : "sampler_step", batch: batch,
                                 sampleShape: sampleShape, numClasses: numClasses, guidance: guidance, cfg: cfg,
                                 learnedVariance: learnedVariance, network: network, guideNetwork: guideNetwork)
        }
        self.init(plain: try graph(false), doubled: guidance.mode.usesCFG ? try graph(true) : nil,
                  parameters: parameters, threads: threads)
    }

    public func run(_ inputs: [String: HostTensor], cfg: Bool) throws -> [String: HostTensor] {
        let graph: Graph
        if cfg {
            guard let doubled else {
                throw DiffusionError("the sampler asked for the CFG step graph, but the runner was built without one")
            }
            graph = doubled
        } else {
            graph = plain
        }
        return try executor.run(graph, inputs: inputs, parameters: parameters)
    }
}

/// The undoubled step graph and, for CFG modes, the doubled one.
func samplerStepGraphs(model: DiffusionTransformer, guideModel: DiffusionTransformer?, batch: Int,
                       guidance: GuidanceSettings, learnedVariance: Bool) throws -> (Graph, Graph?) {
    func graph(_ cfg: Bool) throws -> Graph {
        try samplerStepGraph(model: model, guideModel: guideModel, batch: batch, guidance: guidance, cfg: cfg,
                             learnedVariance: learnedVariance)
    }
    return (try graph(false), guidance.mode.usesCFG ? try graph(true) : nil)
}
