import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTraining
/// How the network's outputs are combined into the denoiser `D` of one sampling step
/// (Docs/conventions.md §1).
///
/// - `none`: `D = F` (the final head).
/// - `cfg`: classifier-free guidance on the doubled batch `[x; x]`, labels `[y; ∅]`:
///   `D = F_u + s·(F_c − F_u)`.
/// - `ig`: Internal Guidance, `D = I + w·(F − I)` with `I` the intermediate head (`final_layer_xr`).
/// - `igCfg`: IG first on each half, then CFG: `g = I + w(F − I)` per half, `D = g_u + s(g_c − g_u)`.
/// - `autoguidance`: `D = D₀ + w·(D₁ − D₀)`, `D₁` the main model's final head, `D₀` a second, weaker
///   network traced in scope `guide` (parameter keys `guide.…`).
/// - `autoguidanceCfg`: autoguidance on each half of the doubled batch (both networks see `[y; ∅]`),
///   then CFG: `g = D₀ + w(D₁ − D₀)` per half, `D = g_u + s(g_c − g_u)`.
public enum GuidanceMode: String, CaseIterable, Sendable, Codable {
    case none
    case cfg
    case ig
    case igCfg = "ig+cfg"
    case autoguidance
    case autoguidanceCfg = "autoguidance+cfg"

    /// The batch is doubled with the null label (inside the CFG interval).
    public var usesCFG: Bool { self == .cfg || self == .igCfg || self == .autoguidanceCfg }
    /// The intermediate head is read and combined with weight w.
    public var usesIG: Bool { self == .ig || self == .igCfg }
    /// A second network is run and combined with weight w.
    public var usesGuideNetwork: Bool { self == .autoguidance || self == .autoguidanceCfg }
    /// `w` (IG or autoguidance weight) takes part.
    public var usesWeight: Bool { usesIG || usesGuideNetwork }
}

/// A closed interval `[lo, hi]` of noise levels σ ∈ [0, 1] (σ = t for REPA, 1 − t for SiT after
/// the shift, t/1000 for DDPM steps).
public struct NoiseInterval: Equatable, Sendable, Codable, CustomStringConvertible {
    public var lo: Double
    public var hi: Double

    public init(lo: Double, hi: Double) {
        self.lo = lo
        self.hi = hi
    }

    /// Every noise level.
    public static let all = NoiseInterval(lo: 0, hi: 1)

    public func contains(_ sigma: Double) -> Bool { sigma >= lo && sigma <= hi }

    public var description: String { "[\(lo), \(hi)]" }
}

/// Guidance of a sampling run: the mode, the weights and the σ-intervals they apply on.
///
/// Intervals are applied by the host loop, not the step graph: outside `igInterval` the loop
/// passes `w = 1` (so `D = F`), outside `cfgInterval` it runs the undoubled graph (only the
/// conditional half). A CFG scale of exactly 1 also runs the undoubled graph (same result).
public struct GuidanceSettings: Equatable, Sendable, Codable {
    public var mode: GuidanceMode
    /// IG weight w (also the autoguidance weight). 1 is no guidance.
    public var weight: Double
    /// CFG scale s. 1 is no guidance.
    public var cfgScale: Double
    /// Noise levels where IG / autoguidance is applied.
    public var igInterval: NoiseInterval
    /// Noise levels where CFG is applied.
    public var cfgInterval: NoiseInterval
    /// CFG guides only the first `k` output channels (original DiT/SiT code: 3); the other channels
    /// take the conditional half. nil: all channels (the IG code, and the default) — for learn_sigma
    /// models that includes the variance channels; IG and autoguidance always act on every channel.
    public var cfgChannels: Int?

    public init(mode: GuidanceMode = .none, weight: Double = 1, cfgScale: Double = 1,
                igInterval: NoiseInterval = .all, cfgInterval: NoiseInterval = .all, cfgChannels: Int? = nil) {
        self.mode = mode
        self.weight = weight
        self.cfgScale = cfgScale
        self.igInterval = igInterval
        self.cfgInterval = cfgInterval
        self.cfgChannels = cfgChannels
    }

    /// No guidance: `D = F`.
    public static let unguided = GuidanceSettings()

    /// The weight w to pass at noise level σ: `weight` inside the IG interval, else 1.
    public func effectiveWeight(sigma: Double) -> Double {
        mode.usesWeight && igInterval.contains(sigma) ? weight : 1
    }

    /// Whether the doubled (CFG) graph runs at noise level σ.
    public func cfgActive(sigma: Double) -> Bool {
        mode.usesCFG && cfgScale != 1 && cfgInterval.contains(sigma)
    }

    /// Checks the settings against the output channel count of the network.
    public func validate(outChannels: Int) throws {
        if let k = cfgChannels, k < 1 || k > outChannels {
            throw DiffusionError("CFG channel count \(k) must lie in 1...\(outChannels)")
        }
        for (name, interval) in [("IG", igInterval), ("CFG", cfgInterval)] where interval.lo > interval.hi {
            throw DiffusionError("\(name) interval \(interval) is empty (lo > hi)")
        }
        guard weight.isFinite, cfgScale.isFinite else {
            throw DiffusionError("guidance weight \(weight) and CFG scale \(cfgScale) must be finite")
        }
    }
}
