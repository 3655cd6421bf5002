import LoomIR

/// The three backbone families of the zoo. DiT and SiT share one network; they differ in the
/// objective and in how the timestep is fed (integer DDPM steps vs float t ∈ [0, 1]).
public enum Backbone: String, CaseIterable, Sendable, Codable {
    case dit, sit, lightningdit
}

/// Standard model sizes: depth / hidden / heads (Docs/conventions.md §2).
public enum ModelPreset: String, CaseIterable, Sendable {
    case S, B, L, XL

    public var depth: Int { [.S: 12, .B: 12, .L: 24, .XL: 28][self]! }
    public var hidden: Int { [.S: 384, .B: 768, .L: 1024, .XL: 1152][self]! }
    public var heads: Int { [.S: 6, .B: 12, .L: 16, .XL: 16][self]! }
}

/// Everything that fixes a zoo model's architecture.
public struct ModelConfig: Equatable, Sendable, Codable {
    public var backbone: Backbone
    public var inputSize: Int
    public var inChannels: Int
    public var learnSigma: Bool
    public var patch: Int
    public var hidden: Int
    public var depth: Int
    public var heads: Int
    public var numClasses: Int
    /// IG head after this many blocks (1-based), or nil for no intermediate head.
    public var igLayer: Int?

    public init(backbone: Backbone, inputSize: Int, inChannels: Int, learnSigma: Bool, patch: Int,
                hidden: Int, depth: Int, heads: Int, numClasses: Int, igLayer: Int? = nil) {
        self.backbone = backbone
        self.inputSize = inputSize
        self.inChannels = inChannels
        self.learnSigma = learnSigma
        self.patch = patch
        self.hidden = hidden
        self.depth = depth
        self.heads = heads
        self.numClasses = numClasses
        self.igLayer = igLayer
    }

    /// The official default for a backbone and preset: DiT 32×32×4 with learn_sigma, SiT the same
    /// without, LightningDiT 16×16×32 at patch 1; 1000 classes.
    public static func preset(_ backbone: Backbone, _ preset: ModelPreset, patch: Int? = nil,
                              igLayer: Int? = nil) -> ModelConfig {
        switch backbone {
        case .dit, .sit:
            return ModelConfig(backbone: backbone, inputSize: 32, inChannels: 4, learnSigma: backbone == .dit,
                               patch: patch ?? 2, hidden: preset.hidden, depth: preset.depth,
                               heads: preset.heads, numClasses: 1000, igLayer: igLayer)
        case .lightningdit:
            return ModelConfig(backbone: backbone, inputSize: 16, inChannels: 32, learnSigma: false,
                               patch: patch ?? 1, hidden: preset.hidden, depth: preset.depth,
                               heads: preset.heads, numClasses: 1000, igLayer: igLayer)
        }
    }

    /// RMSNorm + SwiGLU + 2-D RoPE (LightningDiT).
    public var lightning: Bool { backbone == .lightningdit }
    public var outChannels: Int { learnSigma ? 2 * inChannels : inChannels }
    public var gridSize: Int { inputSize / patch }
    public var tokens: Int { gridSize * gridSize }
    public var headDim: Int { hidden / heads }
    /// SwiGLU hidden width `int(2/3 · 4D)`.
    public var swigluHidden: Int { (2 * 4 * hidden) / 3 }

    /// Checks the configuration before tracing; the message names the offending field.
    public func validate() throws {
        func bad(_ s: String) -> IRError { IRError("invalid model configuration: \(s)") }
        guard inputSize > 0, inChannels > 0, hidden > 0, depth > 0, heads > 0, numClasses > 0 else {
            throw bad("sizes must be positive (input \(inputSize), channels \(inChannels), hidden \(hidden), depth \(depth), heads \(heads), classes \(numClasses))")
        }
        for (name, value, limit) in [("input size", inputSize, 16384), ("channels", inChannels, 4096),
                                     ("hidden", hidden, 65536), ("depth", depth, 1024), ("heads", heads, 4096),
                                     ("classes", numClasses, 1 << 24), ("patch", patch, 16384)] where value > limit {
            throw bad("\(name) \(value) exceeds Loom's limit of \(limit)")
        }
        guard patch > 0, inputSize % patch == 0 else {
            throw bad("patch \(patch) does not divide input size \(inputSize)")
        }
        guard hidden % heads == 0 else { throw bad("hidden \(hidden) is not divisible by heads \(heads)") }
        guard hidden % 4 == 0 else { throw bad("hidden \(hidden) must be a multiple of 4 for the 2-D sin-cos table") }
        if lightning, headDim % 4 != 0 { throw bad("head dim \(headDim) must be a multiple of 4 for 2-D RoPE") }
        if let k = igLayer, k < 1 || k > depth {
            throw bad("--ig-layer \(k) must lie in 1...\(depth) (the head reads the stream after k blocks)")
        }
    }

    /// A short name such as `SiT-S/2+IG@4`.
    public var displayName: String {
        let family = ["dit": "DiT", "sit": "SiT", "lightningdit": "LightningDiT"][backbone.rawValue]!
        let size = ModelPreset.allCases.first { $0.depth == depth && $0.hidden == hidden && $0.heads == heads }
        let name = "\(family)-\(size?.rawValue ?? "\(depth)x\(hidden)x\(heads)")/\(patch)"
        return igLayer.map { name + "+IG@\($0)" } ?? name
    }
}
