import ArgumentParser
import Foundation
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomImport
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining


/// `loom sample --weights W.safetensors`: a file of official state-dict keys (e.g. from `loom import`)
/// instead of a `loom train` checkpoint. The model configuration comes from what `loom import`
/// recorded (or, for other files, from the shapes, `InferredConfig`); the flags give what the
/// weights do not store — the backbone of a DiT/SiT file, the heads, the IG head's block — or
/// override it.
struct OfficialWeightsOptions: ParsableArguments {
    @Option(help: "Official-key safetensors weights (e.g. written by `loom import`) instead of --checkpoint.")
    var weights: String?
    @Option(help: "With --weights: dit, sit or lightningdit (DiT and SiT share their keys).") var backbone: Backbone?
    @Option(help: "With --weights: attention heads, when the weights do not imply them.") var heads: Int?
    @Option(help: "With --weights: the block (1-based) the IG head reads; the weights do not store it.") var igLayer: Int?
    @Option(help: "With --weights: objective (default: ddpm_eps for dit, flow_repa for sit, flow_sit for lightningdit).")
    var objective: Objective?

    /// The weights and the configuration they are sampled with.
    func load() throws -> CheckpointWeights {
        let path = weights!
        let file = try SafeTensors.read(path: path)
        let ordered = file.order.compactMap { name in file.tensors[name].map { (name, $0) } }
        var inferred = InferredConfig(tensors: ordered)
        if let json = file.metadata[Naming.importedConfigKey],
           let recorded = try? JSONDecoder().decode(InferredConfig.self, from: Data(json.utf8)) {
            inferred = recorded
        }
        let backbone = try self.backbone ?? inferred.backbone.flatMap(Backbone.init(rawValue:))
            ?? missing("--backbone dit|sit", "DiT and SiT share their keys")
        func need(_ value: Int?, _ what: String) throws -> Int {
            try value ?? missing(what, "the shapes of \(path) do not give it")
        }
        guard let learnSigma = inferred.learnSigma else { return try missing("a final layer", "no final_layer.linear.weight") }
        if inferred.igHead && igLayer == nil { return try missing("--ig-layer K", "the weights have an IG head (final_layer_xr)") }
        if !inferred.igHead, let igLayer { throw DiffusionError("--ig-layer \(igLayer): \(path) has no IG head (final_layer_xr)") }
        let model = ModelConfig(backbone: backbone, inputSize: try need(inferred.inputSize, "the input size"),
                                inChannels: try need(inferred.inChannels, "the input channels"), learnSigma: learnSigma,
                                patch: try need(inferred.patch, "the patch size"), hidden: try need(inferred.hidden, "the hidden size"),
                                depth: try need(inferred.depth, "the depth"), heads: try need(heads ?? inferred.heads, "--heads N"),
                                numClasses: try need(inferred.numClasses, "the number of classes"), igLayer: igLayer)
        let fallback: Objective = backbone == .dit ? .ddpmEps : backbone == .sit ? .flowRepa : .flowSit
        var tensors: [String: HostTensor] = [:]
        let graph = try DiffusionTransformer(model).forwardGraph(batch: 1)
        var computed: [String: HostTensor]?
        for node in graph.parameterNodes {
            guard case .parameter(let key, let initializer, let trainable) = node.op else { continue }
            if let value = file.tensors[key] {
                guard value.shape == node.type.shape else {
                    throw DiffusionError("\(path): \(key) has shape \(value.shape), \(model.displayName) needs \(node.type.shape) (check --heads and --backbone)")
                }
                tensors[key] = value
            } else if !trainable, Self.isComputedBuffer(initializer) {
                // RoPE tables are buffers the official code computes, not always saved: compute them.
                if computed == nil { computed = ParameterInitializer.initialize(graph, seed: 0) }
                tensors[key] = computed![key]
            } else {
                throw DiffusionError("\(path): no tensor \(key), which \(model.displayName) needs")
            }
        }
        let config = TrainingConfig(model: model, loss: LossSettings(objective: objective ?? fallback), batch: 1, steps: 0)
        return CheckpointWeights(config: config, weights: tensors, step: 0)
    }

    static func isComputedBuffer(_ initializer: Initializer) -> Bool {
        switch initializer {
        case .ropeCos, .ropeSin: return true
        default: return false
        }
    }

    func missing<T>(_ flag: String, _ why: String) throws -> T {
        throw DiffusionError("--weights \(weights!): give \(flag) (\(why))")
    }
}
