/// An op named by its mnemonic, before its attributes are read.
enum IROpKind {
    case input, parameter(trainable: Bool), constant, iota, unary(UnaryFunction), affine
    case binary(BinaryFunction), matmul, reduce(ReduceFunction), softmax, layerNorm, rmsNorm
    case reshape, permute, slice, concat, broadcast, gather, scatterAdd, patchify, unpatchify, rotatePairs, cast
    case conv2d
    case stopGradient
    case fusedElementwise, linear, normModulate, attention, tokenAttention, tokenAttentionBackward, normBackward
    case sumSquares, adamw, allReduce

    init?(_ mnemonic: String) {
        if let f = UnaryFunction(rawValue: mnemonic) { self = .unary(f); return }
        if let f = BinaryFunction(rawValue: mnemonic) { self = .binary(f); return }
        if mnemonic.hasPrefix("reduce_"), let f = ReduceFunction(rawValue: String(mnemonic.dropFirst(7))) {
            self = .reduce(f)
            return
        }
        switch mnemonic {
        case "input": self = .input
        case "param": self = .parameter(trainable: true)
        case "buffer": self = .parameter(trainable: false)
        case "constant": self = .constant
        case "iota": self = .iota
        case "affine": self = .affine
        case "matmul": self = .matmul
        case "softmax": self = .softmax
        case "layer_norm": self = .layerNorm
        case "rms_norm": self = .rmsNorm
        case "reshape": self = .reshape
        case "permute": self = .permute
        case "slice": self = .slice
        case "concat": self = .concat
        case "broadcast": self = .broadcast
        case "gather": self = .gather
        case "scatter_add": self = .scatterAdd
        case "patchify": self = .patchify
        case "unpatchify": self = .unpatchify
        case "rotate_pairs": self = .rotatePairs
        case "conv2d": self = .conv2d
        case "cast": self = .cast
        case "stop_gradient": self = .stopGradient
        case "fused_elementwise": self = .fusedElementwise
        case "linear": self = .linear
        case "norm_modulate": self = .normModulate
        case "attention": self = .attention
        case "token_attention": self = .tokenAttention
        case "token_attention_backward": self = .tokenAttentionBackward
        case "norm_backward": self = .normBackward
        case "sum_squares": self = .sumSquares
        case "adamw": self = .adamw
        case "allreduce": self = .allReduce
        default: return nil
        }
    }

    func makeOp(name: String?, value: Float?, operandCount: Int, attributes a: inout IRAttributes) throws -> Op {
        switch self {
        case .fusedElementwise:
            let windows = a.values["windows"] != nil ? try a.string("windows") : nil
            return .fused(.elementwise(try ElementwiseProgram.parse(try a.string("program"), windows: windows, inputCount: operandCount)))
        case .linear:
            guard a.values["act"] != nil else { return .fused(.linear(activation: nil)) }
            let value = try a.take("act")
            guard case .word(let t) = value, let f = UnaryFunction(rawValue: t.text) else {
                throw IRError("bad attribute '\(a.spelled("act", value))': expected a unary function")
            }
            return .fused(.linear(activation: f))
        case .normModulate: return .fused(.normModulate(eps: try a.float("eps"), rms: try a.flag("rms")))
        case .attention: return .fused(.attention(scale: try a.float("scale")))
        case .tokenAttention: return .fused(.tokenAttention(heads: try a.int("heads"), scale: try a.float("scale")))
        case .normBackward: return .fused(.normBackward(eps: try a.float("eps"), rms: try a.flag("rms")))
        case .tokenAttentionBackward:
            return .fused(.tokenAttentionBackward(heads: try a.int("heads"), scale: try a.float("scale")))
        case .sumSquares: return .fused(.sumSquares)
        case .allReduce: return .fused(.allReduce)
        case .adamw:
            let update = AdamWUpdate(segments: try a.int("segments"), beta1: try a.float("beta1"), beta2: try a.float("beta2"),
                                     eps: try a.float("eps"), clip: try a.flag("clip"), decay: try a.flag("decay"),
                                     ema: try a.flag("ema"))
            guard update.segments > 0, update.operandCount == operandCount else {
                throw IRError("adamw with segments=\(update.segments) takes \(update.operandCount) operands, got \(operandCount)")
            }
            return .fused(.adamw(update))
        case .input: return .input(name: name!)
        case .parameter(let trainable):
            return .parameter(name: name!, initializer: try a.initializer("init"), trainable: trainable)
        case .constant: return .constant(value: value!)
        case .iota: return .iota(axis: try a.int("axis"))
        case .unary(let f): return .unary(f)
        case .affine: return .affine(scale: try a.float("scale"), shift: try a.float("shift"))
        case .binary(let f): return .binary(f)
        case .matmul: return .matmul(transposeA: try a.flag("transpose_a"), transposeB: try a.flag("transpose_b"))
        case .reduce(let f): return .reduce(f, axes: try a.ints("axes"), keepDims: try a.flag("keep_dims"))
        case .softmax: return .softmax
        case .layerNorm: return .layerNorm(eps: try a.float("eps"))
        case .rmsNorm: return .rmsNorm(eps: try a.float("eps"))
        case .reshape: return .reshape(shape: try a.ints("shape"))
        case .permute: return .permute(perm: try a.ints("perm"))
        case .slice: return .slice(axis: try a.int("axis"), start: try a.int("start"), end: try a.int("end"))
        case .concat: return .concat(axis: try a.int("axis"))
        case .broadcast: return .broadcast(shape: try a.ints("shape"))
        case .gather: return .gather
        case .scatterAdd: return .scatterAdd(rows: try a.int("rows"))
        case .patchify: return .patchify(patch: try a.int("patch"))
        case .unpatchify:
            return .unpatchify(patch: try a.int("patch"), gridH: try a.int("grid_h"), gridW: try a.int("grid_w"))
        case .rotatePairs: return .rotatePairs
        case .conv2d: return .conv2d(stride: try a.int("stride"), padding: try a.ints("pad"))
        case .cast: return .cast(to: try a.dtype("to"))
        case .stopGradient: return .stopGradient
        }
    }
}
