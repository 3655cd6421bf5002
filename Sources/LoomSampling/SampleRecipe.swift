/// The papers' sampler settings as named presets (`loom sample --recipe NAME`); `Docs/conventions.md`
/// §1 gives them with their sources. Intervals are in noise level σ (REPA convention σ = t; SiT and
/// LightningDiT σ = 1 − t after the shift).
public enum SampleRecipe: String, CaseIterable, Sendable {
    /// SiT-XL/2 + IG (REPA convention): Euler–Maruyama, 250 steps, IG 1.4 everywhere, CFG 1.35 for
    /// t ≤ 0.7.
    case sitXLIG = "sit-xl-ig"
    /// LightningDiT-XL/1 + IG: Heun on 125 grid points (124 intervals, 248 evaluations), timestep
    /// shift 0.3, IG 1.4 everywhere, CFG 1.45 from shifted t ≥ 0.19 (σ ≤ 0.81).
    case lightningDiTXLIG = "lightningdit-xl-ig"
    /// DiT-XL/2 (no IG head): DDPM respaced to 250 steps with the learned variance, CFG 1.5 on the
    /// first 3 channels, as the original DiT code samples.
    case ditXL = "dit-xl"

    /// Sampler, steps, shift, guidance, weights and intervals of the recipe.
    public struct Settings: Equatable, Sendable {
        public var sampler: SamplerKind
        public var steps: Int
        public var shift: Double
        public var guidance: GuidanceMode
        public var igWeight: Double
        public var cfgScale: Double
        public var igInterval: NoiseInterval
        public var cfgInterval: NoiseInterval
        public var cfgChannels: Int?
    }

    public var settings: Settings {
        switch self {
        case .sitXLIG:
            return Settings(sampler: .eulerMaruyama, steps: 250, shift: 1, guidance: .igCfg, igWeight: 1.4, cfgScale: 1.35,
                            igInterval: .all, cfgInterval: NoiseInterval(lo: 0, hi: 0.7), cfgChannels: nil)
        case .lightningDiTXLIG:
            return Settings(sampler: .heun, steps: 124, shift: 0.3, guidance: .igCfg, igWeight: 1.4, cfgScale: 1.45,
                            igInterval: .all, cfgInterval: NoiseInterval(lo: 0, hi: 0.81), cfgChannels: nil)
        case .ditXL:
            return Settings(sampler: .ddpm, steps: 250, shift: 1, guidance: .cfg, igWeight: 1, cfgScale: 1.5,
                            igInterval: .all, cfgInterval: .all, cfgChannels: 3)
        }
    }
}
