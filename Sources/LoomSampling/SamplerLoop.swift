import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTraining

/// What the loop reports after each network evaluation.
public struct SamplerProgress: Sendable {
    /// Index of this evaluation and how many the run makes (Heun: two per interval).
    public var evaluation: Int
    public var evaluations: Int
    /// Integration interval / respaced step of the evaluation.
    public var step: Int
    public var stage: SamplerEvaluation.Stage
    public var sigma: Double
    public var modelTime: Double
    /// The doubled (CFG) graph ran.
    public var cfg: Bool
    /// The IG / autoguidance weight passed (1 outside the interval).
    public var weight: Double
}

/// The host sampling loop: plans the evaluations (`SamplerPlan`), decides per evaluation which graph
/// runs and with which weights (guidance intervals in σ), draws the noise, and feeds the step graph
/// through a `StepRunner`.
///
/// Noise is keyed by seed and sample index, independent of the batch split: sample j's initial
/// noise is at positions `[j·n, (j+1)·n)` of stream `sampler.init`, and the noise of step k at the
/// same positions of stream `sampler.noise.k` (n = C·H·W). Deterministic steps draw nothing.
public struct SamplerLoop {
    public let settings: SamplerSettings
    public let guidance: GuidanceSettings
    /// [C, H, W] of one sample.
    public let sampleShape: [Int]
    public let plan: [SamplerEvaluation]

    public init(settings: SamplerSettings, guidance: GuidanceSettings, sampleShape: [Int]) throws {
        guard sampleShape.count == 3, sampleShape.allSatisfy({ $0 > 0 }) else {
            throw DiffusionError("sample shape must be [C, H, W], got \(describeShape(sampleShape))")
        }
        self.settings = settings
        self.guidance = guidance
        self.sampleShape = sampleShape
        plan = try SamplerPlan.evaluations(settings)
    }

    /// Number of network evaluations per sample (CFG evaluations count once).
    public var evaluationCount: Int { plan.count }

    /// Initial noise N(0, 1) of samples `firstSample ..< firstSample + count`.
    public static func initialNoise(seed: UInt64, firstSample: Int = 0, count: Int, sampleShape: [Int]) -> HostTensor {
        noise(seed: seed, stream: "sampler.init", firstSample: firstSample, count: count, sampleShape: sampleShape)
    }

    /// The noise `z` of step `step` for samples `firstSample ..< firstSample + count`.
    public static func stepNoise(seed: UInt64, step: Int, firstSample: Int = 0, count: Int,
                                 sampleShape: [Int]) -> HostTensor {
        noise(seed: seed, stream: "sampler.noise.\(step)", firstSample: firstSample, count: count,
              sampleShape: sampleShape)
    }

    static func noise(seed: UInt64, stream: String, firstSample: Int, count: Int, sampleShape: [Int]) -> HostTensor {
        let n = sampleShape.reduce(1, *)
        var random = RandomStream(seed: seed, stream: RandomStream.streamID(stream), position: UInt64(firstSample * n))
        return HostTensor(shape: [count] + sampleShape, floats: random.normal(count * n))
    }

    /// The coefficients and graph choice of evaluation `e` under the guidance settings.
    public func resolve(_ e: SamplerEvaluation) -> (coefficients: StepCoefficients, cfg: Bool) {
        var c = e.coefficients
        let cfg = guidance.cfgActive(sigma: e.guidanceSigma)
        c.weight = guidance.effectiveWeight(sigma: e.guidanceSigma)
        c.cfgScale = cfg ? guidance.cfgScale : 1
        return (c, cfg)
    }

    /// Samples one batch: `labels` fixes the batch size. Starts from `initialNoise` when given
    /// (`--init-noise`), else from the seeded noise of samples `firstSample…`. Returns x at σ = 0.
    public func sample(runner: StepRunner, labels: [Int64], seed: UInt64, firstSample: Int = 0,
                       initialNoise: HostTensor? = nil,
                       progress: ((SamplerProgress) -> Void)? = nil) throws -> HostTensor {
        let batch = labels.count
        guard batch > 0 else { throw DiffusionError("sampling needs at least one label") }
        let type = TensorType(.f32, [batch] + sampleShape)
        var x: HostTensor
        if let initialNoise {
            guard initialNoise.type == type else {
                throw DiffusionError("initial noise: expected \(type), found \(initialNoise.type)")
            }
            x = initialNoise
        } else {
            x = Self.initialNoise(seed: seed, firstSample: firstSample, count: batch, sampleShape: sampleShape)
        }
        let zeros = HostTensor(zeros: type)
        let y = HostTensor(shape: [batch], ints: labels)
        var anchor = zeros
        for (index, e) in plan.enumerated() {
            let (c, cfg) = resolve(e)
            let z = c.usesNoise
                ? Self.stepNoise(seed: seed, step: e.step, firstSample: firstSample, count: batch, sampleShape: sampleShape)
                : zeros
            let inputs: [String: HostTensor] = [
                "x": x,
                "t": HostTensor(shape: [batch], floats: [Float](repeating: Float(e.modelTime), count: batch)),
                "y": y, "z": z,
                "anchor": e.stage == .corrector ? anchor : zeros,
                "coef": HostTensor(shape: [StepCoefficients.count], floats: c.values),
            ]
            let outputs = try runner.run(inputs, cfg: cfg)
            guard let next = outputs["x_next"], next.type == type else {
                throw DiffusionError("step runner returned no x_next of type \(type)")
            }
            if e.stage == .predictor { anchor = x }
            x = next
            progress?(SamplerProgress(evaluation: index, evaluations: plan.count, step: e.step, stage: e.stage,
                                      sigma: e.sigma, modelTime: e.modelTime, cfg: cfg, weight: c.weight))
        }
        return x
    }
}
