import LoomIR

/// A zoo model: DiT, SiT or LightningDiT, optionally with the IG head `final_layer_xr` reading
/// the residual stream after block `igLayer`.
public struct DiffusionTransformer {
    public let config: ModelConfig

    public init(_ config: ModelConfig) throws {
        try config.validate()
        self.config = config
    }

    /// Outputs of one forward pass.
    public struct Outputs {
        public let final: Tensor   // [N, C_out, H, W]
        public let inter: Tensor?  // [N, C_out, H, W], IG head only
    }

    /// Traces the forward pass. x: [N, C, H, W] f32, t: [N] f32, y: [N] integer labels.
    public func forward(_ b: GraphBuilder, x: Tensor, t: Tensor, y: Tensor) -> Outputs {
        annotateBlocks(b)
        var h = patchEmbedding(b, x, patch: config.patch, hidden: config.hidden)  // [N, T, D]
        let c = timestepEmbedding(b, t, hidden: config.hidden)
            + labelEmbedding(b, y, numClasses: config.numClasses, hidden: config.hidden)  // [N, D]
        let rope = config.lightning ? RopeTables(b, grid: config.gridSize, headDim: config.headDim) : nil
        var inter: Tensor?
        for index in 0..<config.depth {
            h = b.scoped("blocks.\(index)") { ditBlock(b, h, c, config: config, rope: rope) }
            if config.igLayer == index + 1 {
                inter = b.scoped("final_layer_xr") { finalLayer(b, h, c, config: config) }
            }
        }
        let final = b.scoped("final_layer") { finalLayer(b, h, c, config: config) }
        return Outputs(final: final, inter: inter)
    }

    /// Profile block labels of the model's parts (`ScopeBlock`).
    public enum BlockLabel {
        public static let embedders = "embedders"
        public static let igHead = "ig_head"
        public static let finalLayer = "final_layer"
    }

    /// Marks the model's blocks for the compiler: the embedders, every transformer block
    /// (repeated), the IG head and the final layer, in model order.
    func annotateBlocks(_ b: GraphBuilder) {
        for scope in ["x_embedder", "pos_embed", "t_embedder", "y_embedder", "feat_rope"] {
            b.annotate(scope: scope, block: BlockLabel.embedders)
        }
        for index in 0..<config.depth {
            b.annotate(scope: "blocks.\(index)", block: "blocks.\(index)", repeated: true)
            if config.igLayer == index + 1 { b.annotate(scope: "final_layer_xr", block: BlockLabel.igHead) }
        }
        b.annotate(scope: "final_layer", block: BlockLabel.finalLayer)
    }

    /// Declares the standard inputs `x`, `t`, `y` for a batch.
    public func inputs(_ b: GraphBuilder, batch: Int) -> (x: Tensor, t: Tensor, y: Tensor) {
        let s = config.inputSize
        return (b.input("x", TensorType(.f32, [batch, config.inChannels, s, s])),
                b.input("t", TensorType(.f32, [batch])),
                b.input("y", TensorType(.i64, [batch])))
    }

    /// The forward graph alone: inputs `x`, `t`, `y`; outputs `out_final` and (IG) `out_inter`.
    public func forwardGraph(batch: Int) throws -> Graph {
        let b = GraphBuilder(name: graphName("forward"))
        let (x, t, y) = inputs(b, batch: batch)
        let out = forward(b, x: x, t: t, y: y)
        b.output("out_final", out.final)
        if let inter = out.inter { b.output("out_inter", inter) }
        return try b.build()
    }

    /// `sit_s2_ig4_forward`-style graph names.
    public func graphName(_ kind: String) -> String {
        let preset = ModelPreset.allCases.first {
            $0.depth == config.depth && $0.hidden == config.hidden && $0.heads == config.heads
        }?.rawValue.lowercased() ?? "d\(config.depth)h\(config.hidden)"
        let ig = config.igLayer.map { "_ig\($0)" } ?? ""
        return "\(config.backbone.rawValue)_\(preset)\(config.patch)\(ig)_\(kind)"
    }
}
