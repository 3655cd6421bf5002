import LoomIR

/// Static cost of one node: multiply-accumulates, floating-point operations and memory traffic.
public struct NodeCost: Equatable, Hashable, Sendable, Codable {
    /// Multiply-accumulates of matmuls (0 for every other op).
    public var macs: Int
    /// Floating-point operations: 2·MACs for matmuls, an elementwise estimate otherwise
    /// (see `CostModel` for the per-element constants).
    public var flops: Int
    /// Bytes of operands the op reads.
    public var bytesRead: Int
    /// Bytes of the result the op writes.
    public var bytesWritten: Int

    public init(macs: Int = 0, flops: Int = 0, bytesRead: Int = 0, bytesWritten: Int = 0) {
        self.macs = macs
        self.flops = flops
        self.bytesRead = bytesRead
        self.bytesWritten = bytesWritten
    }

    public static let zero = NodeCost()

    /// Bytes moved in both directions.
    public var bytes: Int { bytesRead + bytesWritten }

    /// FLOPs per byte moved (0 when nothing moves).
    public var arithmeticIntensity: Double { bytes == 0 ? 0 : Double(flops) / Double(bytes) }

    public static func + (a: NodeCost, b: NodeCost) -> NodeCost {
        NodeCost(macs: a.macs + b.macs, flops: a.flops + b.flops,
                 bytesRead: a.bytesRead + b.bytesRead, bytesWritten: a.bytesWritten + b.bytesWritten)
    }

    public static func += (a: inout NodeCost, b: NodeCost) { a = a + b }
}

/// A static per-node cost model over Loom's op set.
///
/// **MACs** are counted for `matmul` only: `batch·M·N·K` after the transposes, with the broadcast
/// batch axes of the result (so a `[N, T, D] × [D_out, D]ᵀ` linear is `N·T·D_out·D`). Linears,
/// the patch-embedding conv (lowered to `patchify` + matmul), the adaLN and timestep MLP linears and
/// both attention matmuls (`q·kᵀ`, `softmax·v`) are all matmuls, so all of them count. This is the
/// convention of the DiT paper's "Gflops" column (fvcore: one "flop" per MAC); e.g. DiT-XL/2 at
/// 256 tokens is 118.6 GMACs.
///
/// **FLOPs** are `2·MACs` for matmuls; other ops get a per-element estimate (constants below):
/// - unary, binary, affine (`scale·x + shift`, counted as one fused op): 1 per output element
///   (transcendentals such as `exp` or `gelu_tanh` also count 1);
/// - reductions: 1 per input element (plus 1 per output element for `mean`'s division);
/// - softmax: 5 per element (max, subtract, exp, sum, divide);
/// - layer norm: 8 per element (mean, subtract, square, sum, rsqrt-scale, …);
///   RMS norm: 6 per element (square, sum, rsqrt, scale, …);
/// - `scatter_add`: 1 per update element; `constant`, `iota`: 0;
/// - fused kernels (`fused_elementwise`, `linear`, `norm_modulate`, `attention`): the MACs and
///   FLOPs of the primitive ops they replace, so fusion does not change the totals;
/// - layout ops (`reshape`, `permute`, `slice`, `concat`, `broadcast`, `gather`, `patchify`,
///   `unpatchify`, `rotate_pairs`, `cast`, `stop_gradient`): 0.
///
/// **Bytes** are the operand sizes read and the result size written, with these refinements:
/// `input` and `parameter` nodes move nothing (they are bound, not computed); `constant` / `iota`
/// write their result; `reshape` and `stop_gradient` are views (0 bytes); `slice` reads only the
/// slice; `gather` reads the indices and the gathered rows, not the whole table.
public enum CostModel {
    public static let unaryFlopsPerElement = 1
    public static let binaryFlopsPerElement = 1
    public static let affineFlopsPerElement = 1
    public static let reduceFlopsPerInputElement = 1
    public static let softmaxFlopsPerElement = 5
    public static let layerNormFlopsPerElement = 8
    public static let rmsNormFlopsPerElement = 6
    public static let scatterAddFlopsPerUpdate = 1

    /// The cost of `node`, whose operands are looked up in `graph`.
    public static func cost(of node: Node, in graph: Graph) -> NodeCost {
        cost(of: node.op, operands: node.inputs.map { graph.nodes[$0].type }, result: node.type)
    }

    /// The cost of `op` on operands of the given types producing `result`.
    public static func cost(of op: Op, operands: [TensorType], result: TensorType) -> NodeCost {
        let out = result.elementCount
        let read = operands.reduce(0) { $0 + $1.byteCount }
        let written = result.byteCount
        func elementwise(_ flops: Int) -> NodeCost {
            NodeCost(flops: flops, bytesRead: read, bytesWritten: written)
        }
        switch op {
        case .input, .parameter:
            return .zero
        case .constant, .iota:
            return NodeCost(bytesWritten: written)
        case .unary:
            return elementwise(unaryFlopsPerElement * out)
        case .binary:
            return elementwise(binaryFlopsPerElement * out)
        case .affine:
            return elementwise(affineFlopsPerElement * out)
        case .matmul(let transposeA, _):
            let a = operands[0]
            let k = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
            let macs = out * k
            return NodeCost(macs: macs, flops: 2 * macs, bytesRead: read, bytesWritten: written)
        case .conv2d:
            let w = operands[1]
            let macs = out * w.shape[1] * w.shape[2] * w.shape[3]
            return NodeCost(macs: macs, flops: 2 * macs + out, bytesRead: read, bytesWritten: written)
        case .reduce(let function, _, _):
            let inputCount = operands[0].elementCount
            let extra = function == .mean ? out : 0
            return elementwise(reduceFlopsPerInputElement * inputCount + extra)
        case .softmax:
            return elementwise(softmaxFlopsPerElement * out)
        case .layerNorm:
            return elementwise(layerNormFlopsPerElement * out)
        case .rmsNorm:
            return elementwise(rmsNormFlopsPerElement * out)
        case .reshape, .stopGradient:
            return .zero
        case .slice:
            return NodeCost(bytesRead: written, bytesWritten: written)
        case .gather:
            return NodeCost(bytesRead: operands[1].byteCount + written, bytesWritten: written)
        case .scatterAdd:
            let updates = operands[1].elementCount
            return elementwise(scatterAddFlopsPerUpdate * updates)
        case .permute, .concat, .broadcast, .patchify, .unpatchify, .rotatePairs, .cast:
            return elementwise(0)
        case .fused(let kernel):
            return fusedCost(kernel, operands: operands, result: result)
        }
    }

    /// Fused kernels cost what their reference lowering computes (same constants), but move only
    /// their operands and result.
    static func fusedCost(_ kernel: FusedKernel, operands: [TensorType], result: TensorType) -> NodeCost {
        let out = result.elementCount
        let read = operands.reduce(0) { $0 + $1.byteCount }
        var cost = NodeCost(bytesRead: read, bytesWritten: result.byteCount)
        switch kernel {
        case .elementwise(let program):
            // One op per element for each unary, binary or affine instruction; constants are free.
            let ops = program.instructions.filter { if case .constant = $0 { return false } else { return true } }
            cost.flops = ops.count * out
            // A windowed operand is read only inside its box.
            cost.bytesRead = operands.indices.reduce(0) { sum, i in
                sum + program.operandShape(i, of: operands[i].shape).reduce(operands[i].dtype.byteSize, *)
            }
        case .linear(let activation):
            // x [..., K] · weight [N, K]ᵀ + bias [N], then the optional activation.
            let k = operands[0].shape.last ?? 1
            cost.macs = out * k
            cost.flops = 2 * cost.macs + binaryFlopsPerElement * out + (activation == nil ? 0 : unaryFlopsPerElement * out)
        case .normModulate(_, let rms):
            // norm (× weight for RMS), `scale + 1` on [B, D], `·(1 + scale)`, `+ shift`.
            let norm = rms ? rmsNormFlopsPerElement + binaryFlopsPerElement : layerNormFlopsPerElement
            let scaleCount = operands.last?.elementCount ?? 0
            cost.flops = (norm + 2 * binaryFlopsPerElement) * out + affineFlopsPerElement * scaleCount
        case .attention:
            // q [B, H, T, d], k [B, H, S, d], v [B, H, S, e]: q·scale, q·kᵀ, softmax, ·v.
            let (q, k, v) = (operands[0], operands[1], operands[2])
            let scores = q.elementCount / max(q.shape.last ?? 1, 1) * (k.shape[k.rank - 2])
            cost.macs = scores * (q.shape.last ?? 1) + scores * (v.shape.last ?? 1)
            cost.flops = 2 * cost.macs + softmaxFlopsPerElement * scores + affineFlopsPerElement * q.elementCount
        case .tokenAttention(let heads, _):
            // qkv [B, T, 3·H·d] → [B, T, H·d]: per head q·kᵀ [T, T], softmax, ·v.
            let (b, t, width) = (operands[0].shape[0], operands[0].shape[1], operands[0].shape[2] / 3)
            let scores = b * heads * t * t
            cost.macs = 2 * scores * (width / heads)
            cost.flops = 2 * cost.macs + softmaxFlopsPerElement * scores + affineFlopsPerElement * b * t * width
        case .normBackward(_, let rms):
            // Statistics again, the two row sums, the final combination.
            cost.flops = ((rms ? rmsNormFlopsPerElement : layerNormFlopsPerElement) + 6) * out
        case .tokenAttentionBackward(let heads, _):
            // Per head: scores recomputed (q·kᵀ, softmax), dv = Pᵀ·dy, dP = dy·vᵀ, the softmax
            // backward, dq = dS·k, dk = dSᵀ·q: five [T, T]×d products.
            let (b, t, width) = (operands[0].shape[0], operands[0].shape[1], operands[0].shape[2] / 3)
            let scores = b * heads * t * t
            cost.macs = 5 * scores * (width / heads)
            cost.flops = 2 * cost.macs + (softmaxFlopsPerElement + 4) * scores
        case .sumSquares:
            // A square and a summed element per input element, one add per extra operand.
            let elements = operands.reduce(0) { $0 + $1.elementCount }
            cost.flops = (unaryFlopsPerElement + reduceFlopsPerInputElement) * elements + operands.count - 1
        case .allReduce:
            // The sum over the ranks is one add per element and rank; one process copies.
            cost.flops = out
        case .adamw(let u):
            // Per element, as the primitive graph: m (3), v (4), the denominator (3), the step (3),
            // plus the clip (1), the weight decay (1) and the EMA (3) when present.
            let elements = out / u.stateParts
            cost.flops = (13 + (u.clip ? 1 : 0) + (u.decay ? 1 : 0) + (u.ema ? 3 : 0)) * elements
        }
        return cost
    }

    /// Per-node costs, indexed like `graph.nodes`.
    public static func costs(of graph: Graph) -> [NodeCost] {
        graph.nodes.map { cost(of: $0, in: graph) }
    }

    /// The sum over every node of `graph`.
    public static func total(of graph: Graph) -> NodeCost {
        graph.nodes.reduce(NodeCost.zero) { $0 + cost(of: $1, in: graph) }
    }

    /// The sum over the nodes of `graph` that satisfy `include`.
    public static func total(of graph: Graph, where include: (Node) -> Bool) -> NodeCost {
        graph.nodes.reduce(NodeCost.zero) { include($1) ? $0 + cost(of: $1, in: graph) : $0 }
    }

    /// Totals per op mnemonic (`matmul`, `softmax`, …), for breakdowns.
    public static func totalsByOp(of graph: Graph) -> [String: NodeCost] {
        var result: [String: NodeCost] = [:]
        for node in graph.nodes { result[node.op.mnemonic, default: .zero] += cost(of: node, in: graph) }
        return result
    }
}
