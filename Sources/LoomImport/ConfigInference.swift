import Foundation
import LoomGraphs
import LoomRuntime

/// What the shapes of an official-key state dict say about the model (`Docs/conventions.md` §2):
/// hidden size, patch and input channels from `x_embedder.proj.weight` [D, C, p, p]; depth from the
/// `blocks.N` keys; classes from the label table (one row more: the null class); input size from
/// `pos_embed` [1, T, D] (T = (s/p)²); learn_sigma from the output channels of
/// `final_layer.linear.weight` [p²·C_out, D]; LightningDiT from its SwiGLU `mlp.w12`, with heads
/// from the RoPE table; for DiT/SiT the heads come from the standard size with that hidden and
/// depth. The IG head is there when `final_layer_xr.*` is; the block it reads is not stored in the
/// weights.
public struct InferredConfig: Codable, Equatable {
    public var backbone: String?
    public var hidden: Int?
    public var depth: Int?
    public var heads: Int?
    public var patch: Int?
    public var inChannels: Int?
    public var inputSize: Int?
    public var numClasses: Int?
    public var learnSigma: Bool?
    public var igHead: Bool
    /// What could not be inferred, in words.
    public var notes: [String] = []

    public init(tensors: [(String, HostTensor)]) {
        let table = Dictionary(tensors.map { ($0.0, $0.1.shape) }, uniquingKeysWith: { a, _ in a })
        igHead = table.keys.contains { $0.hasPrefix("final_layer_xr.") }
        if let proj = table["x_embedder.proj.weight"], proj.count == 4, proj[2] == proj[3] {
            (hidden, inChannels, patch) = (proj[0], proj[1], proj[2])
        } else {
            notes.append("no x_embedder.proj.weight [D, C, p, p]: not a DiT-family state dict, no configuration inferred")
            return
        }
        let blockNumbers = Set(table.keys.compactMap { key -> Int? in
            let parts = key.split(separator: ".")
            return parts.count > 2 && parts[0] == "blocks" ? Int(parts[1]) : nil
        })
        if !blockNumbers.isEmpty, blockNumbers == Set(0..<blockNumbers.count) { depth = blockNumbers.count }
        if let labels = table["y_embedder.embedding_table.weight"], labels.count == 2 { numClasses = labels[0] - 1 }
        if let pos = table["pos_embed"], pos.count == 3, let p = patch {
            let side = Int(Double(pos[1]).squareRoot().rounded())
            if side * side == pos[1] { inputSize = side * p }
        }
        if let out = table["final_layer.linear.weight"], out.count == 2, let p = patch, let c = inChannels, p > 0 {
            let channels = out[0] / (p * p)
            if channels == 2 * c { learnSigma = true } else if channels == c { learnSigma = false }
        }
        let lightning = table.keys.contains { $0.hasSuffix(".mlp.w12.weight") }
        if lightning {
            backbone = Backbone.lightningdit.rawValue
            if let rope = table["feat_rope.freqs_cos"], rope.count == 2, rope[1] > 0, let d = hidden, d % rope[1] == 0 {
                heads = d / rope[1]
            }
        } else if let d = hidden, let n = depth, let preset = ModelPreset.allCases.first(where: { $0.hidden == d && $0.depth == n }) {
            heads = preset.heads
        }
        if !lightning { notes.append("DiT and SiT share their keys: name the backbone (the objective tells them apart)") }
        if heads == nil { notes.append("the number of heads is not stored in the weights: pass --heads") }
        if igHead { notes.append("an IG head (final_layer_xr) is present; the block it reads is not stored: pass --ig-layer") }
    }

    /// One line for reports.
    public var summary: String {
        func show<T>(_ name: String, _ value: T?) -> String { "\(name) \(value.map { "\($0)" } ?? "?")" }
        return [show("backbone", backbone), show("hidden", hidden), show("depth", depth), show("heads", heads),
                show("patch", patch), show("channels", inChannels), show("input size", inputSize),
                show("classes", numClasses), show("learn_sigma", learnSigma), "IG head \(igHead ? "yes" : "no")"]
            .joined(separator: ", ")
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }
}
