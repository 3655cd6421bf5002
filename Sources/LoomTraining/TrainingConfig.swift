import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime

/// How training timesteps are drawn (flow objectives; DDPM always draws integer steps uniformly).
public enum TimeSampling: String, Codable, Sendable, CaseIterable {
    case uniform
    /// `t = sigmoid(n)`, n ~ N(0, 1).
    case logitNormal = "logit_normal"
}

/// Everything that defines a training run. Stored in every checkpoint, so `--resume` rebuilds
/// exactly the same step.
public struct TrainingConfig: Codable, Equatable, Sendable {
    public var model: ModelConfig
    public var loss: LossSettings
    public var optimizer: AdamWSettings
    public var batch: Int
    public var steps: Int
    public var learningRate: Float
    /// Linear warm-up of the learning rate over this many steps (0: none).
    public var warmupSteps: Int
    public var seed: UInt64
    /// Probability of replacing a label by the null class (for classifier-free guidance).
    public var labelDropout: Float
    public var timeSampling: TimeSampling
    /// Operand precision of the step's matrix products; nil (checkpoints written before the flag
    /// existed) is fp32. It changes results, so it lives in the checkpoint.
    public var precision: PrecisionPolicy?
    /// Train on the first `limit` samples only (nil: all). It changes the data order, so it lives in
    /// the checkpoint and a resumed run keeps it.
    public var limit: Int?
    /// Gradient accumulation: each step's batch in this many micro-batches (nil or 1: none).
    public var accumulate: Int?
    /// The folder of latent shards the run trains on (nil: Fashion-MNIST). A resumed run keeps it.
    public var latents: String?

    /// The precision the step is compiled for.
    public var resolvedPrecision: PrecisionPolicy { precision ?? .fp32 }

    public init(model: ModelConfig, loss: LossSettings, optimizer: AdamWSettings = AdamWSettings(), batch: Int,
                steps: Int, learningRate: Float = 1e-4, warmupSteps: Int = 0, seed: UInt64 = 0,
                labelDropout: Float = 0.1, timeSampling: TimeSampling = .uniform, precision: PrecisionPolicy? = nil,
                limit: Int? = nil) {
        self.precision = precision
        self.limit = limit
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.batch = batch
        self.steps = steps
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
        self.seed = seed
        self.labelDropout = labelDropout
        self.timeSampling = timeSampling
    }

    /// Learning rate at 1-based step `t`.
    public func learningRate(atStep t: Int) -> Float {
        guard warmupSteps > 0, t < warmupSteps else { return learningRate }
        return learningRate * Float(t) / Float(warmupSteps)
    }

    public func validate() throws {
        guard batch > 0 else { throw DiffusionError("--batch must be positive, got \(batch)") }
        if let limit, limit <= 0 { throw DiffusionError("--limit must be positive, got \(limit)") }
        if let accumulate {
            guard accumulate >= 1, batch % accumulate == 0 else {
                throw DiffusionError("--accumulate \(accumulate) must be positive and divide --batch \(batch)")
            }
        }
        guard steps >= 0 else { throw DiffusionError("--steps must not be negative, got \(steps)") }
        guard warmupSteps >= 0 else { throw DiffusionError("--warmup must not be negative, got \(warmupSteps)") }
        guard learningRate > 0, learningRate.isFinite else {
            throw DiffusionError("--lr must be a positive number, got \(learningRate)")
        }
        guard (0...1).contains(labelDropout) else {
            throw DiffusionError("--label-dropout must lie in [0, 1], got \(labelDropout)")
        }
        if let d = optimizer.emaDecay, !(0...1).contains(d) {
            throw DiffusionError("--ema-decay must lie in [0, 1], got \(d)")
        }
        try model.validate()
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    /// Decodes and validates a stored configuration; errors name `source` and the bad value.
    public static func from(json: String, source: String) throws -> TrainingConfig {
        let config: TrainingConfig
        do {
            config = try JSONDecoder().decode(TrainingConfig.self, from: Data(json.utf8))
        } catch {
            throw DiffusionError("\(source): metadata \"loom.training\" is not a valid training configuration (\(error))")
        }
        do {
            try config.validate()
        } catch let error as DiffusionError {
            throw DiffusionError("\(source): metadata \"loom.training\": \(error.message)")
        } catch let error as IRError {
            throw DiffusionError("\(source): metadata \"loom.training\": \(error.message)")
        }
        return config
    }
}
