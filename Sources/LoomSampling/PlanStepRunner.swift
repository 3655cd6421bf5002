import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTraining

/// A `StepRunner` on compiled plans: the undoubled and (for CFG modes) the doubled step graph,
/// each compiled once (fusion turns the IG + CFG + solver tail into one elementwise kernel) and
/// run with `PlanExecutor` over pre-planned memory.
public final class PlanStepRunner: StepRunner {
    public let plain: PlanExecutor
    public let doubled: PlanExecutor?

    public init(plain: Graph, doubled: Graph?, parameters: [String: HostTensor],
                threads: Int = Threading.defaultThreads, precision: PrecisionPolicy = .fp32) throws {
        self.plain = try PlanExecutor(plan: try Pipeline.inference(precision: precision).plan(plain), threads: threads)
        try self.plain.setParameters(parameters, ignoringExtra: true)
        if let doubled {
            let executor = try PlanExecutor(plan: try Pipeline.inference(precision: precision).plan(doubled), threads: threads)
            try executor.setParameters(parameters, ignoringExtra: true)
            self.doubled = executor
        } else {
            self.doubled = nil
        }
    }

    /// Both step plans of a zoo model (and optional autoguidance guide model, keys `guide.…`).
    public convenience init(model: DiffusionTransformer, guideModel: DiffusionTransformer? = nil, batch: Int,
                            guidance: GuidanceSettings, learnedVariance: Bool = false,
                            parameters: [String: HostTensor], threads: Int = Threading.defaultThreads,
                            precision: PrecisionPolicy = .fp32) throws {
        let (plain, doubled) = try samplerStepGraphs(model: model, guideModel: guideModel, batch: batch,
                                                     guidance: guidance, learnedVariance: learnedVariance)
        try self.init(plain: plain, doubled: doubled, parameters: parameters, threads: threads, precision: precision)
    }

    public func run(_ inputs: [String: HostTensor], cfg: Bool) throws -> [String: HostTensor] {
        if cfg {
            guard let doubled else {
                throw DiffusionError("the sampler asked for the CFG step plan, but the runner was built without one")
            }
            return try doubled.run(inputs: inputs)
        }
        return try plain.run(inputs: inputs)
    }
}
