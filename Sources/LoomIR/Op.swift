/// Elementwise functions of one argument.
public enum UnaryFunction: String, CaseIterable, Sendable {
    case neg, exp, log, sqrt, rsqrt, tanh, sin, cos, silu
    case geluTanh = "gelu_tanh"
    case sigmoid, square, abs, recip, relu, sign
}

/// Elementwise functions of two arguments, with NumPy-style broadcasting.
public enum BinaryFunction: String, CaseIterable, Sendable {
    case add, sub, mul, div, max, min
}

/// Reductions over a set of axes.
public enum ReduceFunction: String, CaseIterable, Sendable {
    case sum, mean, max
}

/// How a parameter or buffer gets its initial values (Docs/conventions.md §2, "Init").
public enum Initializer: Equatable, Sendable {
    case zeros
    case ones
    /// N(0, std²).
    case normal(std: Float)
    /// Xavier/Glorot uniform on the given fan-in and fan-out.
    case xavierUniform(fanIn: Int, fanOut: Int)
    /// Fixed 2-D sin-cos position table for a `gridH`×`gridW` token grid: shape [1, T, D].
    case sinCos2D(gridH: Int, gridW: Int)
    /// 2-D RoPE cosine table for a token grid and head dimension: shape [T, headDim].
    case ropeCos(gridH: Int, gridW: Int)
    /// 2-D RoPE sine table: shape [T, headDim].
    case ropeSin(gridH: Int, gridW: Int)
}

/// The closed op set of Loom's IR. Every node of a graph is one of these.
public enum Op: Equatable, Sendable {
    /// A named runtime input (data, timesteps, labels, guidance weights…).
    case input(name: String)
    /// A named parameter (trainable) or buffer (not trainable) with its state-dict key.
    case parameter(name: String, initializer: Initializer, trainable: Bool)
    /// A tensor filled with one value; its type is declared on the node.
    case constant(value: Float)
    /// A tensor whose elements equal their index along `axis`; its type is declared.
    case iota(axis: Int)
    case unary(UnaryFunction)
    /// `scale·x + shift`.
    case affine(scale: Float, shift: Float)
    case binary(BinaryFunction)
    /// `[..., M, K] × [..., K, N]` (after the optional transposes), batch axes broadcast.
    case matmul(transposeA: Bool, transposeB: Bool)
    case reduce(ReduceFunction, axes: [Int], keepDims: Bool)
    /// Softmax over the last axis.
    case softmax
    /// LayerNorm over the last axis, no affine.
    case layerNorm(eps: Float)
    /// RMSNorm over the last axis, no weight.
    case rmsNorm(eps: Float)
    case reshape(shape: [Int])
    case permute(perm: [Int])
    /// `x[..., start..<end, ...]` along `axis`.
    case slice(axis: Int, start: Int, end: Int)
    case concat(axis: Int)
    /// Broadcast to `shape` (NumPy rules).
    case broadcast(shape: [Int])
    /// Embedding lookup: table `[V, D]`, integer indices `[...]` → `[..., D]`.
    case gather
    /// Sum of `updates` `[..., D]` into the rows `indices` `[...]` of a zero `[rows, D]` table
    /// (the gradient of `gather`).
    case scatterAdd(rows: Int)
    /// `[N, C, H, W]` → `[N, (H/p)(W/p), C·p·p]`; token row-major, inner order (c, i, j) as a conv weight.
    case patchify(patch: Int)
    /// `[N, h·w, p·p·C]` → `[N, C, h·p, w·p]`; inner order (i, j, c), channel fastest.
    case unpatchify(patch: Int, gridH: Int, gridW: Int)
    /// Over the last axis, each adjacent pair (a, b) → (−b, a).
    case rotatePairs
    /// 2-D convolution of `x [N, C, H, W]` by `w [O, C, kh, kw]` plus `bias [O]` → `[N, O, OH, OW]`,
    /// with `stride` and zero `padding` (top, left, bottom, right) — PyTorch's `conv2d` layouts.
    case conv2d(stride: Int, padding: [Int])
    case cast(to: DType)
    /// Identity forward; blocks gradients.
    case stopGradient
    /// A kernel made by the fusion pass (never present before fusion).
    case fused(FusedKernel)

    /// The op's name in IR text.
    public var mnemonic: String {
        switch self {
        case .input: return "input"
        case .parameter(_, _, let trainable): return trainable ? "param" : "buffer"
        case .constant: return "constant"
        case .iota: return "iota"
        case .unary(let f): return f.rawValue
        case .affine: return "affine"
        case .binary(let f): return f.rawValue
        case .matmul: return "matmul"
        case .reduce(let f, _, _): return "reduce_\(f.rawValue)"
        case .softmax: return "softmax"
        case .layerNorm: return "layer_norm"
        case .rmsNorm: return "rms_norm"
        case .reshape: return "reshape"
        case .permute: return "permute"
        case .slice: return "slice"
        case .concat: return "concat"
        case .broadcast: return "broadcast"
        case .gather: return "gather"
        case .scatterAdd: return "scatter_add"
        case .patchify: return "patchify"
        case .unpatchify: return "unpatchify"
        case .rotatePairs: return "rotate_pairs"
        case .conv2d: return "conv2d"
        case .cast: return "cast"
        case .stopGradient: return "stop_gradient"
        case .fused(let kernel): return kernel.mnemonic
        }
    }

    /// True for ops whose type is declared rather than inferred (they take no operands).
    public var isLeaf: Bool {
        switch self {
        case .input, .parameter, .constant, .iota: return true
        default: return false
        }
    }

    /// True for ops whose kernels multiply matrices (their GEMMs take the node's compute precision):
    /// matmul, linear, the attention kernels and the attention gradient.
    public var isMatrixProduct: Bool {
        switch self {
        case .matmul, .fused(.linear), .fused(.attention), .fused(.tokenAttention), .fused(.tokenAttentionBackward):
            return true
        default:
            return false
        }
    }

    /// True for ops whose kernels may write their result over a same-shaped operand that dies at
    /// that launch (each element is read before it is written, and only by its own position).
    public var allowsInPlace: Bool {
        switch self {
        case .unary, .affine, .binary, .softmax, .layerNorm, .rmsNorm, .rotatePairs: return true
        case .fused(.elementwise), .fused(.normModulate): return true
        default: return false
        }
    }

    /// Number of operands the op takes (nil: variadic, at least one).
    public var arity: Int? {
        switch self {
        case .input, .parameter, .constant, .iota: return 0
        case .binary, .matmul, .gather, .scatterAdd: return 2
        case .conv2d: return 3
        case .concat: return nil
        case .fused(let kernel):
            switch kernel {
            case .elementwise, .normModulate, .sumSquares, .adamw, .allReduce: return nil
            case .linear, .attention: return 3
            case .tokenAttention: return 1
            case .tokenAttentionBackward, .normBackward: return 2
            }
        default: return 1
        }
    }
}

/// What a node is to the program that runs it.
public enum NodeRole: String, Sendable {
    case input, parameter, buffer, activation, output
}

extension Op {
    /// The state-dict key of a parameter or buffer node.
    public var parameterName: String? {
        if case .parameter(let name, _, _) = self { return name }
        return nil
    }
}
