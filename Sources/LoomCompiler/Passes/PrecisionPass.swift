import LoomIR

/// Chooses the operand precision of every matrix product under a precision policy. With `bf16`,
/// each GEMM-bearing node (matmul, fused linear, the attention kernels and their gradient) is
/// marked `compute=bf16`: its kernel rounds both operands to bf16 (nearest, ties to even) where it
/// reads them and accumulates in fp32; its result stays fp32. Everything else (norms and their
/// statistics, softmax statistics, the loss, the optimizer with master weights, moments and EMA)
/// stays fp32. The cast is part of the GEMM launch rather than a node of its own: no bf16 copy of
/// an operand is ever materialised, so the plan's memory is that of the fp32 plan.
public struct PrecisionPass: GraphPass {
    public var name: String { "precision" }
    public var policy: PrecisionPolicy

    public init(policy: PrecisionPolicy) {
        self.policy = policy
    }

    public func run(_ graph: Graph) throws -> Graph {
        var out = graph
        let target: ComputePrecision = policy == .bf16 ? .bf16 : .f32
        var marked = 0
        for index in out.nodes.indices where out.nodes[index].op.isMatrixProduct {
            out.nodes[index].compute = target
            marked += 1
        }
        if policy == .bf16 {
            out.remarks.append("precision: \(marked) matrix products take bf16 operands (fp32 accumulation); everything else fp32")
        }
        return out
    }
}
