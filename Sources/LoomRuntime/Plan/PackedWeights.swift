import CLoomKernels
import LoomIR

/// Weights of a plan's `linear` launches prepared once for their GEMM, for plans that never write
/// their parameters (sampler and other forward steps): fp32 launches on Loom's own kernel get the
/// weight packed into its panel layout, bf16 launches get it as bf16 values. Each weight is prepared
/// once after the parameters are loaded instead of by every GEMM call. Most useful where a weight
/// meets few rows (batch-1 steps), when preparing it costs as much as the multiply-adds it feeds.
final class PackedWeights {
    /// How a launch's weight is kept.
    enum Format { case ownPanels, bf16 }

    /// Packed fp32 weight of each launch (nil where none), indexed like the executor's launches.
    private(set) var panelsByLaunch: [UnsafePointer<Float>?]
    /// bf16 weight [N, K] of each launch (nil where none).
    private(set) var bf16ByLaunch: [UnsafePointer<UInt16>?]
    private var buffers: [(weight: TensorRef, format: Format, storage: UnsafeMutableRawPointer)] = []
    /// Set when the parameters change; cleared by `refresh`.
    var stale = true

    /// Nil when the plan writes parameters (training steps) or has no linear to prepare: bf16
    /// launches, and fp32 launches when `ownKernel` runs fp32 GEMMs.
    init?(plan: Plan, launches: [Int], operands: [[TensorRef]], precisions: [loom_precision], ownKernel: Bool) {
        guard !plan.graph.outputs.contains(where: { $0.name.hasPrefix(Plan.updatePrefix) }) else { return nil }
        panelsByLaunch = Array(repeating: nil, count: launches.count)
        bf16ByLaunch = Array(repeating: nil, count: launches.count)
        var bufferOf: [Pair: Int] = [:]
        for (index, id) in launches.enumerated() {
            let node = plan.graph.nodes[id]
            guard case .fused(.linear) = node.op else { continue }
            switch plan.locations[node.inputs[1]] {
            case .parameter, .parameterView: break
            default: continue
            }
            let format: Format = precisions[index] == LOOM_PRECISION_BF16 ? .bf16 : .ownPanels
            if format == .ownPanels && !ownKernel { continue }
            let weight = operands[index][1]  // [N, K]
            let key = Pair(base: weight.base, format: format)
            let buffer: Int
            if let existing = bufferOf[key] {
                buffer = existing
            } else {
                let (n, k) = (Int64(weight.shape[0]), Int64(weight.shape[1]))
                let bytes = format == .bf16 ? Int(n * k) * 2 : Int(loom_sgemm_packed_b_floats(n, k)) * 4
                buffer = buffers.count
                bufferOf[key] = buffer
                buffers.append((weight, format, .allocate(byteCount: max(bytes, 64), alignment: 64)))
            }
            let storage = UnsafeRawPointer(buffers[buffer].storage)
            switch format {
            case .ownPanels: panelsByLaunch[index] = storage.assumingMemoryBound(to: Float.self)
            case .bf16: bf16ByLaunch[index] = storage.assumingMemoryBound(to: UInt16.self)
            }
        }
        if buffers.isEmpty { return nil }
    }

    /// One prepared copy per weight and format.
    private struct Pair: Hashable {
        var base: UnsafeMutableRawPointer
        var format: Format
    }

    deinit {
        for buffer in buffers { buffer.storage.deallocate() }
    }

    /// Prepares every weight again when the parameters changed since the last time, one weight per
    /// thread of the team.
    func refresh() {
        guard stale else { return }
        Threading.perEntryParallel(buffers.count) { _, index in
            let (weight, format, storage) = self.buffers[index]
            let (n, k) = (weight.shape[0], weight.shape[1])
            switch format {
            case .ownPanels:
                loom_sgemm_pack_b(1, Int64(n), Int64(k), weight.floats, Int64(k), storage.assumingMemoryBound(to: Float.self))
            case .bf16:
                loom_convert_to_bf16(weight.floats, storage.assumingMemoryBound(to: UInt16.self), Int64(n * k))
            }
        }
        stale = false
    }
}
