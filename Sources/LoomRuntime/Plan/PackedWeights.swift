import CLoomKernels
import LoomIR

/// Packed copies of the weights of a plan's `linear` launches, for plans that never write their
/// parameters (sampler and other forward steps): each weight is packed into the GEMM's panel layout
/// once after the parameters are loaded, instead of by every GEMM call. Most useful where a weight
/// meets few rows (batch-1 steps), when packing costs as much as the multiply-adds it feeds.
final class PackedWeights {
    /// Packed weight of each launch (nil where none), indexed like the executor's launches.
    private(set) var byLaunch: [UnsafePointer<Float>?]
    private var buffers: [(weight: TensorRef, packed: UnsafeMutablePointer<Float>)] = []
    /// Set when the parameters change; cleared by `refresh`.
    var stale = true

    /// Nil when the plan writes parameters (training steps) or has no fp32 linear with a weight in
    /// the parameter region (bf16 launches round their weights as they read them).
    init?(plan: Plan, launches: [Int], operands: [[TensorRef]], precisions: [loom_precision]) {
        guard !plan.graph.outputs.contains(where: { $0.name.hasPrefix(Plan.updatePrefix) }) else { return nil }
        byLaunch = Array(repeating: nil, count: launches.count)
        var bufferOf: [UnsafeMutableRawPointer: Int] = [:]
        for (index, id) in launches.enumerated() {
            let node = plan.graph.nodes[id]
            guard case .fused(.linear) = node.op, precisions[index] == LOOM_PRECISION_F32 else { continue }
            switch plan.locations[node.inputs[1]] {
            case .parameter, .parameterView: break
            default: continue
            }
            let weight = operands[index][1]  // [N, K]
            if let existing = bufferOf[weight.base] {
                byLaunch[index] = UnsafePointer(buffers[existing].packed)
                continue
            }
            let floats = Int(loom_sgemm_packed_b_floats(Int64(weight.shape[0]), Int64(weight.shape[1])))
            let packed = UnsafeMutablePointer<Float>.allocate(capacity: max(floats, 1))
            bufferOf[weight.base] = buffers.count
            buffers.append((weight, packed))
            byLaunch[index] = UnsafePointer(packed)
        }
        if buffers.isEmpty { return nil }
    }

    deinit {
        for buffer in buffers { buffer.packed.deallocate() }
    }

    /// Packs every weight again when the parameters changed since the last pack, one weight per
    /// thread of the team.
    func refresh() {
        guard stale else { return }
        Threading.perEntryParallel(buffers.count) { _, index in
            let (weight, packed) = self.buffers[index]
            let (n, k) = (weight.shape[0], weight.shape[1])
            loom_sgemm_pack_b(1, Int64(n), Int64(k), weight.floats, Int64(k), packed)
        }
        stale = false
    }
}
