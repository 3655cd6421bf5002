import CLoomKernels
import LoomIR

/// A whole `linear` launch of a forward plan on oneDNN (`loom_onednn_linear`): created when the plan
/// is loaded, its weight reordered once per parameter load into the primitive's preferred layout
/// (bf16 for bf16 launches), run over the team as one oneDNN call, the activation then applied by
/// row blocks over the team. Used where oneDNN runs the launch's precision.
final class LibraryLinear {
    let handle: OpaquePointer
    let rows: Int, n: Int, k: Int
    let bf16: Bool
    /// The reordered weight (owned by `PackedWeights`).
    var weights: UnsafeRawPointer?

    init?(rows: Int, n: Int, k: Int, bf16: Bool, threads: Int) {
        guard let handle = loom_onednn_linear_create(Int64(rows), Int64(n), Int64(k), Int64(k), Int64(n), 1,
                                                     bf16 ? 1 : 0, Int32(threads)) else { return nil }
        self.handle = handle
        (self.rows, self.n, self.k, self.bf16) = (rows, n, k, bf16)
    }

    deinit { loom_onednn_linear_destroy(handle) }

    /// Bytes of the reordered weight.
    var weightBytes: Int { Int(loom_onednn_linear_weight_bytes(handle)) }

    /// Reorders W [n, k] into `storage`.
    func pack(_ weight: UnsafePointer<Float>, into storage: UnsafeMutableRawPointer) {
        _ = loom_onednn_linear_pack(handle, weight, storage)
    }

    /// y = x·Wᵀ + bias, then the activation; false when oneDNN failed (nothing written that the
    /// caller's own path does not overwrite).
    func run(_ x: TensorRef, _ bias: TensorRef, _ y: TensorRef, activation: UnaryFunction?) -> Bool {
        guard let weights, y.count == rows * n else { return false }
        let scratch = bf16 ? ScratchPool.gemm.buffer(slot: 0, floats: (rows * k + 1) / 2) : nil
        let converted = scratch.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: UInt16.self) }
        guard loom_linear_prepared(handle, Int64(rows), Int64(k), x.floats, Int64(k), weights, y.floats, bias.floats,
                                   converted) != 0 else { return false }
        guard let activation else { return true }
        let code = Int32(KernelLibrary.unaryCode(activation).rawValue)
        let (yp, n, blocks) = (y.floats, n, max(1, min(rows, Int(loom_get_num_threads()))))
        Threading.perEntryParallel(blocks) { _, block in
            let start = rows * block / blocks, end = rows * (block + 1) / blocks
            loom_bias_activation_tile(yp + start * n, Int64(end - start), Int64(n), Int64(n), nil, code)
        }
        return true
    }
}
