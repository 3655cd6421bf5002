import CLoomKernels
import LoomIR

/// Weights of a plan's `linear` launches prepared once for their GEMM, for plans that never write
/// their parameters (sampler and other forward steps): where oneDNN runs the launch's precision, a
/// whole-layer primitive with the weight reordered into its preferred layout (`LibraryLinear`);
/// otherwise fp32 launches on Loom's own kernel get the weight packed into its panel layout and bf16
/// launches get it as bf16 values. Each weight is prepared
/// once after the parameters are loaded instead of by every GEMM call. Most useful where a weight
/// meets few rows (batch-1 steps), when preparing it costs as much as the multiply-adds it feeds.
final class PackedWeights {
    /// How a launch's weight is kept.
    enum Format { case ownPanels, bf16, library }

    /// Packed fp32 weight of each launch (nil where none), indexed like the executor's launches.
    private(set) var panelsByLaunch: [UnsafePointer<Float>?]
    /// bf16 weight [N, K] of each launch (nil where none).
    private(set) var bf16ByLaunch: [UnsafePointer<UInt16>?]
    /// The oneDNN layer of each launch (nil where none).
    private(set) var libraryByLaunch: [LibraryLinear?]
    private var buffers: [(weight: TensorRef, format: Format, storage: UnsafeMutableRawPointer, layer: LibraryLinear?)] = []
    /// Set when the parameters change; cleared by `refresh`.
    var stale = true

    /// Nil when the plan writes parameters (training steps) or has no linear to prepare.
    init?(plan: Plan, launches: [Int], operands: [[TensorRef]], results: [TensorRef], precisions: [loom_precision],
          kernels: KernelSelection, threads: Int) {
        guard !plan.graph.outputs.contains(where: { $0.name.hasPrefix(Naming.updatePrefix) }) else { return nil }
        panelsByLaunch = Array(repeating: nil, count: launches.count)
        bf16ByLaunch = Array(repeating: nil, count: launches.count)
        libraryByLaunch = Array(repeating: nil, count: launches.count)
        var bufferOf: [Pair: Int] = [:]
        for (index, id) in launches.enumerated() {
            let node = plan.graph.nodes[id]
            guard case .fused(.linear) = node.op else { continue }
            switch plan.locations[node.inputs[1]] {
            case .parameter, .parameterView: break
            default: continue
            }
            let bf16 = precisions[index] == LOOM_PRECISION_BF16
            let weight = operands[index][1]  // [N, K]
            let (n, k) = (weight.shape[0], weight.shape[1])
            let rows = results[index].count / max(n, 1)
            let onLibrary = bf16 ? kernels.bf16 == .onednn : kernels.f32 == .onednn
            var layer = onLibrary ? LibraryLinear(rows: rows, n: n, k: k, bf16: bf16, threads: threads) : nil
            let format: Format = layer != nil ? .library : bf16 ? .bf16 : .ownPanels
            if format == .ownPanels && kernels.f32 != .own { continue }
            let key = Pair(base: weight.base, format: format, rows: format == .library ? rows : 0)
            let buffer: Int
            if let existing = bufferOf[key] {
                buffer = existing
                layer = buffers[existing].layer
            } else {
                let bytes: Int
                switch format {
                case .library: bytes = layer!.weightBytes
                case .bf16: bytes = n * k * 2
                case .ownPanels: bytes = Int(loom_sgemm_packed_b_floats(Int64(n), Int64(k))) * 4
                }
                buffer = buffers.count
                bufferOf[key] = buffer
                buffers.append((weight, format, .allocate(byteCount: max(bytes, 64), alignment: 64), layer))
            }
            let storage = UnsafeRawPointer(buffers[buffer].storage)
            switch format {
            case .ownPanels: panelsByLaunch[index] = storage.assumingMemoryBound(to: Float.self)
            case .bf16: bf16ByLaunch[index] = storage.assumingMemoryBound(to: UInt16.self)
            case .library:
                layer!.weights = storage
                libraryByLaunch[index] = layer
            }
        }
        if buffers.isEmpty { return nil }
    }

    /// One prepared copy per weight and format.
    private struct Pair: Hashable {
        var base: UnsafeMutableRawPointer
        var format: Format
        /// Rows of the layer (a library layout belongs to its primitive's shape).
        var rows: Int
    }

    deinit {
        for buffer in buffers { buffer.storage.deallocate() }
    }

    /// Prepares every weight again when the parameters changed since the last time, one weight per
    /// thread of the team.
    func refresh() {
        guard stale else { return }
        Threading.perEntryParallel(buffers.count) { _, index in
            let (weight, format, storage, layer) = self.buffers[index]
            let (n, k) = (weight.shape[0], weight.shape[1])
            switch format {
            case .library:
                layer!.pack(weight.floats, into: storage)
            case .ownPanels:
                loom_sgemm_pack_b(1, Int64(n), Int64(k), weight.floats, Int64(k), storage.assumingMemoryBound(to: Float.self))
            case .bf16:
                loom_convert_to_bf16(weight.floats, storage.assumingMemoryBound(to: UInt16.self), Int64(n * k))
            }
        }
        stale = false
    }
}
