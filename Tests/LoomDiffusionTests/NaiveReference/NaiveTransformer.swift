import Foundation
import LoomData
import LoomDiffusion
import LoomRuntime
import LoomTestSupport

/// Training objectives of Docs/conventions.md §5.
enum NaiveObjective: String {
    case ddpmEps = "ddpm_eps"
    case flowRepa = "flow_repa"
    case flowSit = "flow_sit"
}

/// A model and objective configuration as the golden-file `config` metadata describes it.
struct NaiveConfig: CustomStringConvertible {
    var lightning = false
    var inputSize: Int
    var inChannels: Int
    var learnSigma = false
    var patch: Int
    var hidden: Int
    var depth: Int
    var heads: Int
    var numClasses = 10
    /// 1-based: the IG head reads the residual stream after this many blocks; nil = no IG head.
    var igLayer: Int?
    var igLambda = 0.5
    var cosineLoss = false
    var objective: NaiveObjective
    var batch = 2
    var seed: UInt64 = 1

    var outChannels: Int { learnSigma ? 2 * inChannels : inChannels }
    var grid: Int { inputSize / patch }
    var tokens: Int { grid * grid }
    var headDim: Int { hidden / heads }
    /// DiT: 4D; LightningDiT SwiGLU: `int(2/3 · 4D)` (Python evaluation order).
    var mlpHidden: Int { lightning ? Int(2.0 / 3.0 * 4.0 * Double(hidden)) : 4 * hidden }

    var description: String {
        "\(lightning ? "LightningDiT" : (objective == .ddpmEps ? "DiT" : "SiT")) \(objective.rawValue) "
            + "input \(inputSize) C \(inChannels)\(learnSigma ? " learn_sigma" : "") p \(patch) D \(hidden) "
            + "depth \(depth) heads \(heads) classes \(numClasses) ig \(igLayer.map(String.init) ?? "none") "
            + "λ \(igLambda)\(cosineLoss ? " cosine" : "") batch \(batch)"
    }

    /// The golden file's `config` JSON (Docs/conventions.md §5 keys).
    var json: String {
        "{\"num_classes\": \(numClasses), \"lightning\": \(lightning), \"ig_lambda\": \(igLambda), "
            + "\"cosine_loss\": \(cosineLoss), \"input_size\": \(inputSize), \"in_channels\": \(inChannels), "
            + "\"out_channels\": \(outChannels), \"learn_sigma\": \(learnSigma), \"patch\": \(patch), "
            + "\"hidden\": \(hidden), \"depth\": \(depth), \"heads\": \(heads), "
            + "\"ig_layer\": \(igLayer.map(String.init) ?? "null"), \"objective\": \"\(objective.rawValue)\"}"
    }

    /// Parses a golden file's `config` JSON (for the shipped files).
    init(json: String, batch: Int) throws {
        struct Bad: Error, CustomStringConvertible { var description: String }
        guard let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw Bad(description: "config is not a JSON object")
        }
        func int(_ key: String) throws -> Int {
            guard let n = object[key] as? NSNumber else { throw Bad(description: "config lacks \(key)") }
            return n.intValue
        }
        func bool(_ key: String) throws -> Bool {
            guard let b = object[key] as? Bool else { throw Bad(description: "config lacks \(key)") }
            return b
        }
        guard let name = object["objective"] as? String, let objective = NaiveObjective(rawValue: name) else {
            throw Bad(description: "config has no known objective")
        }
        self.init(inputSize: try int("input_size"), inChannels: try int("in_channels"), patch: try int("patch"),
                  hidden: try int("hidden"), depth: try int("depth"), heads: try int("heads"), objective: objective)
        lightning = try bool("lightning")
        learnSigma = try bool("learn_sigma")
        numClasses = try int("num_classes")
        if let raw = object["ig_layer"], let n = raw as? NSNumber { igLayer = n.intValue }
        igLambda = (object["ig_lambda"] as? NSNumber)?.doubleValue ?? 0.5
        cosineLoss = (object["cosine_loss"] as? Bool) ?? false
        self.batch = batch
    }

    init(lightning: Bool = false, inputSize: Int, inChannels: Int, learnSigma: Bool = false, patch: Int,
         hidden: Int, depth: Int, heads: Int, numClasses: Int = 10, igLayer: Int? = nil, igLambda: Double = 0.5,
         cosineLoss: Bool = false, objective: NaiveObjective, batch: Int = 2, seed: UInt64 = 1) {
        self.lightning = lightning
        self.inputSize = inputSize
        self.inChannels = inChannels
        self.learnSigma = learnSigma
        self.patch = patch
        self.hidden = hidden
        self.depth = depth
        self.heads = heads
        self.numClasses = numClasses
        self.igLayer = igLayer
        self.igLambda = igLambda
        self.cosineLoss = cosineLoss
        self.objective = objective
        self.batch = batch
        self.seed = seed
    }
}

/// The DiT / SiT / LightningDiT forward pass with an optional IG head (Docs/conventions.md §1, §2, §4),
/// in Double with naive loops. Parameters are keyed by the official state-dict names.
struct NaiveTransformer {
    let config: NaiveConfig
    private let p: [String: [Double]]

    init(config: NaiveConfig, parameters: [String: HostTensor]) {
        self.config = config
        var converted: [String: [Double]] = [:]
        for (key, tensor) in parameters { converted[key] = tensor.floats.map(Double.init) }
        p = converted
    }

    private func param(_ key: String) -> [Double] {
        guard let value = p[key] else { preconditionFailure("naive reference: no parameter \(key)") }
        return value
    }

    /// Every state-dict key with its shape, for this configuration (sorted by key).
    static func parameterShapes(_ c: NaiveConfig) -> [(String, [Int])] {
        let d = c.hidden
        var shapes: [String: [Int]] = [
            "x_embedder.proj.weight": [d, c.inChannels, c.patch, c.patch],
            "x_embedder.proj.bias": [d],
            "pos_embed": [1, c.tokens, d],
            "t_embedder.mlp.0.weight": [d, 256], "t_embedder.mlp.0.bias": [d],
            "t_embedder.mlp.2.weight": [d, d], "t_embedder.mlp.2.bias": [d],
            "y_embedder.embedding_table.weight": [c.numClasses + 1, d],
        ]
        for n in 0..<c.depth {
            let b = "blocks.\(n)."
            shapes[b + "adaLN_modulation.1.weight"] = [6 * d, d]
            shapes[b + "adaLN_modulation.1.bias"] = [6 * d]
            shapes[b + "attn.qkv.weight"] = [3 * d, d]
            shapes[b + "attn.qkv.bias"] = [3 * d]
            shapes[b + "attn.proj.weight"] = [d, d]
            shapes[b + "attn.proj.bias"] = [d]
            if c.lightning {
                shapes[b + "norm1.weight"] = [d]
                shapes[b + "norm2.weight"] = [d]
                shapes[b + "mlp.w12.weight"] = [2 * c.mlpHidden, d]
                shapes[b + "mlp.w12.bias"] = [2 * c.mlpHidden]
                shapes[b + "mlp.w3.weight"] = [d, c.mlpHidden]
                shapes[b + "mlp.w3.bias"] = [d]
            } else {
                shapes[b + "mlp.fc1.weight"] = [c.mlpHidden, d]
                shapes[b + "mlp.fc1.bias"] = [c.mlpHidden]
                shapes[b + "mlp.fc2.weight"] = [d, c.mlpHidden]
                shapes[b + "mlp.fc2.bias"] = [d]
            }
        }
        var heads = ["final_layer"]
        if c.igLayer != nil { heads.append("final_layer_xr") }
        for head in heads {
            shapes[head + ".adaLN_modulation.1.weight"] = [2 * d, d]
            shapes[head + ".adaLN_modulation.1.bias"] = [2 * d]
            shapes[head + ".linear.weight"] = [c.patch * c.patch * c.outChannels, d]
            shapes[head + ".linear.bias"] = [c.patch * c.patch * c.outChannels]
            if c.lightning { shapes[head + ".norm_final.weight"] = [d] }
        }
        if c.lightning {
            shapes["feat_rope.freqs_cos"] = [c.tokens, c.headDim]
            shapes["feat_rope.freqs_sin"] = [c.tokens, c.headDim]
        }
        return shapes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Random, non-zero parameters (fixed tables for `pos_embed` and the RoPE buffers): linear and
    /// conv weights uniform with standard deviation 1/√fan_in, biases and embeddings of scale ≈ 0.14,
    /// norm weights 1 ± 0.25; stored as Float32.
    static func randomParameters(_ c: NaiveConfig, rng: inout NaiveRNG) -> [String: HostTensor] {
        var result: [String: HostTensor] = [:]
        for (key, shape) in parameterShapes(c) {
            let count = shape.reduce(1, *)
            var values: [Double]
            switch key {
            case "pos_embed":
                values = Naive.posEmbed(hidden: c.hidden, grid: c.grid)
            case "feat_rope.freqs_cos":
                values = Naive.ropeTables(headDim: c.headDim, grid: c.grid).cos
            case "feat_rope.freqs_sin":
                values = Naive.ropeTables(headDim: c.headDim, grid: c.grid).sin
            case _ where key.hasSuffix("norm1.weight") || key.hasSuffix("norm2.weight")
                || key.hasSuffix("norm_final.weight"):
                values = (0..<count).map { _ in 1 + rng.uniform(-0.25, 0.25) }
            case _ where key.hasSuffix(".bias") || key.hasPrefix("y_embedder"):
                values = (0..<count).map { _ in rng.uniform(-0.25, 0.25) }
            default:
                let fanIn = shape.dropFirst().reduce(1, *)
                let bound = (3.0 / Double(fanIn)).squareRoot()
                values = (0..<count).map { _ in rng.uniform(-bound, bound) }
            }
            result[key] = HostTensor(shape: shape, floats: values.map { Float($0) })
        }
        return result
    }

    /// The forward pass: `x` [N, C, H, W] flat, `t` [N], `y` [N] → `out_final` and (IG) `out_inter`,
    /// each [N, C_out, H, W] flat.
    func forward(x: [Double], t: [Double], y: [Int]) -> (final: [Double], inter: [Double]?) {
        let c = config
        let imageSize = c.outChannels * c.inputSize * c.inputSize
        var final = [Double](repeating: 0, count: c.batch * imageSize)
        var inter: [Double]? = c.igLayer == nil ? nil : final
        for n in 0..<c.batch {
            let sample = Array(x[(n * c.inChannels * c.inputSize * c.inputSize)...]
                .prefix(c.inChannels * c.inputSize * c.inputSize))
            let (f, i) = forwardOne(sample, t: t[n], y: y[n])
            final.replaceSubrange((n * imageSize)..<((n + 1) * imageSize), with: f)
            if let i { inter!.replaceSubrange((n * imageSize)..<((n + 1) * imageSize), with: i) }
        }
        return (final, inter)
    }

    private func forwardOne(_ image: [Double], t: Double, y: Int) -> ([Double], [Double]?) {
        let c = config
        let d = c.hidden
        // Patch embedding (conv, kernel = stride = p), tokens row-major, plus pos_embed.
        let convW = param("x_embedder.proj.weight"), convB = param("x_embedder.proj.bias")
        let pos = param("pos_embed")
        var tokens: [[Double]] = []
        for row in 0..<c.grid {
            for col in 0..<c.grid {
                var h = [Double](repeating: 0, count: d)
                for o in 0..<d {
                    var sum = convB[o]
                    for ch in 0..<c.inChannels {
                        for i in 0..<c.patch {
                            for j in 0..<c.patch {
                                let w = convW[((o * c.inChannels + ch) * c.patch + i) * c.patch + j]
                                let pixel = image[(ch * c.inputSize + row * c.patch + i) * c.inputSize
                                                  + col * c.patch + j]
                                sum += w * pixel
                            }
                        }
                    }
                    h[o] = sum + pos[(row * c.grid + col) * d + o]
                }
                tokens.append(h)
            }
        }
        // Conditioning c = t_emb + y_emb.
        let freq = Naive.timestepEmbedding(t)
        let h1 = Naive.silu(Naive.linear(freq, param("t_embedder.mlp.0.weight"), param("t_embedder.mlp.0.bias"),
                                         outFeatures: d))
        var cond = Naive.linear(h1, param("t_embedder.mlp.2.weight"), param("t_embedder.mlp.2.bias"), outFeatures: d)
        let table = param("y_embedder.embedding_table.weight")
        for i in 0..<d { cond[i] += table[y * d + i] }
        let siluCond = Naive.silu(cond)

        var inter: [Double]?
        for n in 0..<c.depth {
            tokens = block(n, tokens, siluCond)
            if c.igLayer == n + 1 { inter = finalLayer("final_layer_xr", tokens, siluCond) }
        }
        return (finalLayer("final_layer", tokens, siluCond), inter)
    }

    private func norm(_ x: [Double], weightKey: String) -> [Double] {
        config.lightning ? Naive.rmsNorm(x, weight: param(weightKey)) : Naive.layerNorm(x)
    }

    /// One adaLN-Zero block.
    private func block(_ index: Int, _ x: [[Double]], _ siluCond: [Double]) -> [[Double]] {
        let c = config, d = c.hidden, b = "blocks.\(index)."
        let mod = Naive.chunk(Naive.linear(siluCond, param(b + "adaLN_modulation.1.weight"),
                                           param(b + "adaLN_modulation.1.bias"), outFeatures: 6 * d), 6)
        let (shiftMSA, scaleMSA, gateMSA, shiftMLP, scaleMLP, gateMLP) = (mod[0], mod[1], mod[2], mod[3], mod[4], mod[5])
        var x = x
        let attnIn = x.map { Naive.modulate(norm($0, weightKey: b + "norm1.weight"), shift: shiftMSA, scale: scaleMSA) }
        let attnOut = attention(index, attnIn)
        for t in 0..<x.count { for i in 0..<d { x[t][i] += gateMSA[i] * attnOut[t][i] } }
        for t in 0..<x.count {
            let h = Naive.modulate(norm(x[t], weightKey: b + "norm2.weight"), shift: shiftMLP, scale: scaleMLP)
            let m = mlp(index, h)
            for i in 0..<d { x[t][i] += gateMLP[i] * m[i] }
        }
        return x
    }

    private func mlp(_ index: Int, _ h: [Double]) -> [Double] {
        let c = config, b = "blocks.\(index).mlp."
        if c.lightning {
            let w12 = Naive.linear(h, param(b + "w12.weight"), param(b + "w12.bias"), outFeatures: 2 * c.mlpHidden)
            var g = [Double](repeating: 0, count: c.mlpHidden)
            for i in 0..<c.mlpHidden { g[i] = Naive.silu(w12[i]) * w12[c.mlpHidden + i] }
            return Naive.linear(g, param(b + "w3.weight"), param(b + "w3.bias"), outFeatures: c.hidden)
        }
        let h1 = Naive.linear(h, param(b + "fc1.weight"), param(b + "fc1.bias"), outFeatures: c.mlpHidden)
        return Naive.linear(h1.map(Naive.geluTanh), param(b + "fc2.weight"), param(b + "fc2.bias"),
                            outFeatures: c.hidden)
    }

    /// Multi-head self-attention: qkv split (3, heads, head_dim) with q/k/v outermost, RoPE on q and
    /// k for LightningDiT, scale head_dim^−0.5, softmax, heads concatenated, `proj`.
    private func attention(_ index: Int, _ x: [[Double]]) -> [[Double]] {
        let c = config, d = c.hidden, hd = c.headDim, b = "blocks.\(index).attn."
        let qkvW = param(b + "qkv.weight"), qkvB = param(b + "qkv.bias")
        let qkv = x.map { Naive.linear($0, qkvW, qkvB, outFeatures: 3 * d) }
        let ropeCos = c.lightning ? param("feat_rope.freqs_cos") : []
        let ropeSin = c.lightning ? param("feat_rope.freqs_sin") : []
        var merged = [[Double]](repeating: [Double](repeating: 0, count: d), count: x.count)
        let scale = 1 / Double(hd).squareRoot()
        for head in 0..<c.heads {
            func part(_ which: Int, _ token: Int) -> [Double] {
                let start = which * d + head * hd
                var v = Array(qkv[token][start..<(start + hd)])
                if c.lightning && which < 2 {
                    v = Naive.rope(v, cos: ropeCos[(token * hd)..<((token + 1) * hd)],
                                   sin: ropeSin[(token * hd)..<((token + 1) * hd)])
                }
                return v
            }
            let q = (0..<x.count).map { part(0, $0) }
            let k = (0..<x.count).map { part(1, $0) }
            let v = (0..<x.count).map { part(2, $0) }
            for i in 0..<x.count {
                var scores = [Double](repeating: 0, count: x.count)
                for j in 0..<x.count {
                    var dot = 0.0
                    for e in 0..<hd { dot += q[i][e] * k[j][e] }
                    scores[j] = dot * scale
                }
                let probs = Naive.softmax(scores)
                for e in 0..<hd {
                    var sum = 0.0
                    for j in 0..<x.count { sum += probs[j] * v[j][e] }
                    merged[i][head * hd + e] = sum
                }
            }
        }
        return merged.map { Naive.linear($0, param(b + "proj.weight"), param(b + "proj.bias"), outFeatures: d) }
    }

    /// Final layer (or the IG head `final_layer_xr`): norm, modulate [shift, scale], linear to
    /// p²·C_out, unpatchify (token vector laid out (p_row, p_col, channel)) → [C_out, H, W] flat.
    private func finalLayer(_ prefix: String, _ x: [[Double]], _ siluCond: [Double]) -> [Double] {
        let c = config, d = c.hidden, pp = c.patch
        let mod = Naive.chunk(Naive.linear(siluCond, param(prefix + ".adaLN_modulation.1.weight"),
                                           param(prefix + ".adaLN_modulation.1.bias"), outFeatures: 2 * d), 2)
        let w = param(prefix + ".linear.weight"), bias = param(prefix + ".linear.bias")
        var image = [Double](repeating: 0, count: c.outChannels * c.inputSize * c.inputSize)
        for row in 0..<c.grid {
            for col in 0..<c.grid {
                let token = x[row * c.grid + col]
                let h = Naive.modulate(norm(token, weightKey: prefix + ".norm_final.weight"), shift: mod[0], scale: mod[1])
                let out = Naive.linear(h, w, bias, outFeatures: pp * pp * c.outChannels)
                for i in 0..<pp {
                    for j in 0..<pp {
                        for ch in 0..<c.outChannels {
                            image[(ch * c.inputSize + row * pp + i) * c.inputSize + col * pp + j]
                                = out[(i * pp + j) * c.outChannels + ch]
                        }
                    }
                }
            }
        }
        return image
    }
}
