import LoomIR

/// How a launch spreads its work over the thread team. Lowering records one per launch in the
/// plan (`Plan.partitions`, printed in plan files), and the executor hands it to the GEMM kernels,
/// so no shape-based choice is made while a plan runs. The split itself (how many rows or columns
/// each thread gets) follows from the recorded kind and the team size.
public enum LaunchPartition: String, Codable, Sendable, CaseIterable {
    /// No launch (leaves, views).
    case none
    /// One thread: too little work to share.
    case single
    /// One GEMM split into slabs of rows (multiples of 16), one per thread.
    case rows
    /// One GEMM split into slabs of columns (multiples of 96, whole packed panels), one per thread.
    case columns
    /// Whole entries (batched GEMM entries, attention (batch, head) pairs) dealt round-robin, each
    /// on one thread.
    case entries
    /// Fixed blocks of elements or rows, one contiguous range of blocks per thread when the work is
    /// large enough (elementwise, normalisation, reduction, layout and optimizer kernels).
    case blocks

    /// The partition of one row-major GEMM of [m, n] over depth k: single below 2²⁰ multiply-adds,
    /// else rows when C is at least as tall as wide (or narrower than 128 columns), else columns.
    public static func gemm(m: Int, n: Int, k: Int) -> LaunchPartition {
        let splitRows = m >= n || n < 128
        guard m * n * k >= KernelLibrary.partitionedGEMMThreshold, !splitRows || m >= 32 else { return .single }
        return splitRows ? .rows : .columns
    }

    /// A batched matmul whose B has no batch axes and whose A is not transposed (or has one entry)
    /// is one GEMM with A's batch folded into M.
    public static func matmulFoldsBatch(rankB: Int, transposeA: Bool, batch: Int) -> Bool {
        rankB == 2 && (!transposeA || batch == 1)
    }

    /// The partition of a batched matmul: whole entries when there are several and each is small
    /// (or there are many), else each entry split like one GEMM in turn.
    public static func matmul(batch: Int, m: Int, n: Int, k: Int, foldsBatch: Bool) -> LaunchPartition {
        if foldsBatch { return gemm(m: batch * m, n: n, k: k) }
        if batch >= 2, m * n * k <= KernelLibrary.perEntryGEMMLimit || batch >= 8 { return .entries }
        return gemm(m: m, n: n, k: k)
    }

    /// The partition lowering records for `node` (a launch of `graph`).
    public static func of(_ node: Node, in graph: Graph) -> LaunchPartition {
        switch node.op {
        case .input, .parameter:
            return .none
        case .matmul(let ta, _):
            let (a, b) = (graph.nodes[node.inputs[0]].type.shape, graph.nodes[node.inputs[1]].type.shape)
            let y = node.type.shape
            let (m, n) = (y[y.count - 2], y[y.count - 1])
            let k = ta ? a[a.count - 2] : a[a.count - 1]
            let batch = y.dropLast(2).reduce(1, *)
            return matmul(batch: batch, m: m, n: n, k: k, foldsBatch: matmulFoldsBatch(rankB: b.count, transposeA: ta, batch: batch))
        case .fused(.linear):
            let k = graph.nodes[node.inputs[0]].type.shape.last ?? 1
            let n = node.type.shape.last ?? 1
            return gemm(m: node.type.elementCount / max(n, 1), n: n, k: k)
        case .fused(.attention), .fused(.tokenAttention), .fused(.tokenAttentionBackward):
            return .entries
        default:
            return .blocks
        }
    }
}
