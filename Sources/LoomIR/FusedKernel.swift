/// Kernels made by the fusion pass. Each replaces a subgraph of primitive ops and keeps that
/// subgraph as its reference lowering (`FusedKernel` nodes never appear before fusion, and autodiff
/// refuses them).
public enum FusedKernel: Equatable, Sendable {
    /// A chain of elementwise ops over broadcast operands, evaluated in one pass.
    case elementwise(ElementwiseProgram)
    /// `act(x·Wᵀ + b)`: x [..., K], weight [N, K], bias [N] → [..., N]; the bias and activation are
    /// applied while the GEMM's output is cache-hot.
    case linear(activation: UnaryFunction?)
    /// LayerNorm (or RMSNorm times `weight`) over the last axis, then adaLN modulate
    /// `·(1 + scale) + shift`: x [B, T, D], (weight [D]), shift [B, D], scale [B, D] → [B, T, D].
    case normModulate(eps: Float, rms: Bool)
    /// `softmax(q·kᵀ·scale)·v` per batch and head: q [B, H, T, d], k [B, H, S, d], v [B, H, S, e]
    /// → [B, H, T, e], without materialising the scores outside per-thread scratch.
    case attention(scale: Float)
    /// Self-attention read straight from the qkv projection and written token-major:
    /// qkv [B, T, 3·H·d] (q, k, v side by side, each H heads of d) → [B, T, H·d]. Replaces the
    /// head split (reshape, permute, three slices) and merge (permute, reshape) around `attention`:
    /// each head's GEMMs address its columns of the token rows through the leading dimension.
    case tokenAttention(heads: Int, scale: Float)
    /// The gradient of `token_attention` with respect to qkv: (qkv [B, T, 3·H·d], dy [B, T, H·d]) →
    /// dqkv [B, T, 3·H·d]. Flash-style: nothing of the forward is saved but qkv; each head's
    /// probabilities are recomputed in a [T, T] block that stays in cache, then dv = Pᵀ·dy,
    /// dP = dy·vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dq = dS·k·scale, dk = dSᵀ·q·scale.
    case tokenAttentionBackward(heads: Int, scale: Float)
    /// The gradient of `layer_norm` (or `rms_norm`, without a weight) over the last axis:
    /// (x, dy) → dx, one pass per row that recomputes the mean and rstd from x instead of reading
    /// saved statistics or the normalised value.
    case normBackward(eps: Float, rms: Bool)
    /// Σᵢ Σⱼ xᵢ[j]² over any number of operands → f32[]: the squared global gradient norm in one
    /// pass (replaces a `square` and a `reduce_sum` per gradient and the chain of adds).
    case sumSquares
    /// The optimizer step over every trainable parameter in one launch (see `AdamWUpdate`).
    case adamw(AdamWUpdate)
    /// The mean over the ranks of a data-parallel step of every operand, written back to back:
    /// (x₀, x₁, …) → f32[Σᵢ |xᵢ|] (each xᵢ flattened, in operand order). Inserted by the
    /// `allreduce` stage over the gradients; the executor runs it through its communicator (one
    /// process: the concatenation itself).
    case allReduce

    public var mnemonic: String {
        switch self {
        case .elementwise: return "fused_elementwise"
        case .linear: return "linear"
        case .normModulate: return "norm_modulate"
        case .attention: return "attention"
        case .tokenAttention: return "token_attention"
        case .tokenAttentionBackward: return "token_attention_backward"
        case .normBackward: return "norm_backward"
        case .sumSquares: return "sum_squares"
        case .adamw: return "adamw"
        case .allReduce: return "allreduce"
        }
    }
}

/// A straight-line program over registers: registers 0..<inputCount hold the operands, each
/// instruction defines the next register, and the last register is the result.
/// Text form: `mul(r0,r1);affine(r2,0.5,1.0);gelu_tanh(r3);add(r4,r2);const(2.0)` (windows have
/// their own attribute, `windowsText`).
public struct ElementwiseProgram: Equatable, Sendable {
    /// One instruction: defines the next register from earlier ones (`rN`) or a constant.
    public enum Instruction: Equatable, Sendable {
        case unary(UnaryFunction, Int)
        case affine(Int, scale: Float, shift: Float)
        case binary(BinaryFunction, Int, Int)
        case constant(Float)
    }

    public var inputCount: Int
    public var instructions: [Instruction]
    /// Operands read in place through a window (operand index → box), e.g. one half of a doubled
    /// batch; the others are read whole.
    public var windows: [Int: OperandWindow]

    public init(inputCount: Int, instructions: [Instruction], windows: [Int: OperandWindow] = [:]) {
        self.inputCount = inputCount
        self.instructions = instructions
        self.windows = windows
    }

    public var registerCount: Int { inputCount + instructions.count }

    /// Registers the C kernel provides (operands plus instructions).
    public static let maxRegisters = 64

    /// Checks that every instruction reads an earlier register and the program fits the kernel.
    public func validate() throws {
        guard !instructions.isEmpty else { throw IRError("elementwise program has no instructions") }
        guard registerCount <= Self.maxRegisters else {
            throw IRError("elementwise program needs \(registerCount) registers; the kernel has \(Self.maxRegisters)")
        }
        for i in windows.keys where i < 0 || i >= inputCount {
            throw IRError("elementwise program has a window on operand \(i); it reads \(inputCount) operand(s)")
        }
        for (i, instruction) in instructions.enumerated() {
            let limit = inputCount + i
            let reads: [Int]
            switch instruction {
            case .unary(_, let a), .affine(let a, _, _): reads = [a]
            case .binary(_, let a, let b): reads = [a, b]
            case .constant: reads = []
            }
            for r in reads where r < 0 || r >= limit {
                throw IRError("elementwise program instruction \(i) reads r\(r), which is not defined yet")
            }
        }
    }

    public var text: String {
        instructions.map { instruction -> String in
            switch instruction {
            case .unary(let f, let a): return "\(f.rawValue)(r\(a))"
            case .affine(let a, let s, let b): return "affine(r\(a),\(s.description),\(b.description))"
            case .binary(let f, let a, let b): return "\(f.rawValue)(r\(a),r\(b))"
            case .constant(let v): return "const(\(v.description))"
            }
        }.joined(separator: ";")
    }

    /// Parses the text form; errors name the offending instruction.
    public static func parse(_ text: String, inputCount: Int) throws -> ElementwiseProgram {
        var instructions: [Instruction] = []
        for piece in text.split(separator: ";") {
            guard let open = piece.firstIndex(of: "("), piece.hasSuffix(")") else {
                throw IRError("bad elementwise instruction '\(piece)'")
            }
            let name = String(piece[..<open])
            let args = piece[piece.index(after: open)..<piece.index(before: piece.endIndex)]
                .split(separator: ",").map(String.init)
            func register(_ s: String) throws -> Int {
                guard s.hasPrefix("r"), let r = Int(s.dropFirst()) else {
                    throw IRError("bad register '\(s)' in elementwise instruction '\(piece)'")
                }
                return r
            }
            func number(_ s: String) throws -> Float {
                guard let v = Float(s) else { throw IRError("bad number '\(s)' in elementwise instruction '\(piece)'") }
                return v
            }
            if name == "const", args.count == 1 {
                instructions.append(.constant(try number(args[0])))
            } else if name == "affine", args.count == 3 {
                instructions.append(.affine(try register(args[0]), scale: try number(args[1]), shift: try number(args[2])))
            } else if let f = UnaryFunction(rawValue: name), args.count == 1 {
                instructions.append(.unary(f, try register(args[0])))
            } else if let f = BinaryFunction(rawValue: name), args.count == 2 {
                instructions.append(.binary(f, try register(args[0]), try register(args[1])))
            } else {
                throw IRError("unknown elementwise instruction '\(piece)'")
            }
        }
        let program = ElementwiseProgram(inputCount: inputCount, instructions: instructions)
        try program.validate()
        return program
    }
}
