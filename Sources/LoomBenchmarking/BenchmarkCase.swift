import Foundation
import LoomCompiler
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining
import LoomData

/// One benchmarked step: a model, a batch and what the step does. The same names are used by
/// `loom bench`, the ordo-one benchmarks in `Benchmarks/` and the PyTorch peer
/// (`Benchmarks/pytorch/peer.py`), so the side-by-side script can pair them.
public struct BenchmarkCase: Equatable, Sendable {
    /// What one timed step runs.
    public enum Kind: String, Sendable {
        /// Forward, backward, gradient clipping, AdamW and EMA (flow objective, IG loss with λ 0.5).
        case train
        /// One sampler step with IG (w 1.5): forward, guidance, Euler update.
        case sampleIG = "sample-ig"
        /// One sampler step with IG (w 1.5) and CFG (s 1.5): the forward batch is doubled.
        case sampleIGCFG = "sample-igcfg"
    }

    public var name: String
    public var kind: Kind
    public var model: ModelConfig
    public var batch: Int

    public init(name: String, kind: Kind, model: ModelConfig, batch: Int) {
        self.name = name
        self.kind = kind
        self.model = model
        self.batch = batch
    }

    /// SiT with the DiT-S/B skeleton (adaLN-Zero, no learned σ), 32×32×4 latents, IG head after block 4.
    static func sit(_ preset: ModelPreset, patch: Int) -> ModelConfig {
        ModelConfig.preset(.sit, preset, patch: patch, igLayer: 4)
    }

    public static let all: [BenchmarkCase] = [
        BenchmarkCase(name: "train-s2-b8", kind: .train, model: sit(.S, patch: 2), batch: 8),
        BenchmarkCase(name: "sample-ig-s2-b8", kind: .sampleIG, model: sit(.S, patch: 2), batch: 8),
        BenchmarkCase(name: "sample-igcfg-s2-b8", kind: .sampleIGCFG, model: sit(.S, patch: 2), batch: 8),
        BenchmarkCase(name: "sample-ig-s4-b1", kind: .sampleIG, model: sit(.S, patch: 4), batch: 1),
        BenchmarkCase(name: "train-s4-b64", kind: .train, model: sit(.S, patch: 4), batch: 64),
        BenchmarkCase(name: "train-b2-b4", kind: .train, model: sit(.B, patch: 2), batch: 4),
    ]

    /// The case called `name`, or an error listing the known cases.
    public static func named(_ name: String) throws -> BenchmarkCase {
        guard let found = all.first(where: { $0.name == name }) else {
            throw DiffusionError("no benchmark case '\(name)' (cases: \(all.map(\.name).joined(separator: ", ")))")
        }
        return found
    }

    /// Images the forward pass sees per step (twice the batch with CFG).
    public var forwardBatch: Int { kind == .sampleIGCFG ? 2 * batch : batch }

    /// Passes over the forward's MACs per step: forward + backward (≈ 2× forward) when training.
    public var passes: Int { kind == .train ? 3 : 1 }
}
