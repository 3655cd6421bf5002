import CLoomKernels
import COpenBLAS
import Foundation

/// Where the heads of an attention operand live: element (b, h, row, col) is at
/// `base + b·batch + h·head + row·row + col` (columns contiguous).
struct AttentionOperands {
    struct Layout {
        var batch: Int
        var head: Int
        var row: Int
    }

    var q, k, v: UnsafeMutablePointer<Float>
    var y: UnsafeMutablePointer<Float>
    var batch, heads, queries, keys, depth, valueDepth: Int
    var qLayout, kLayout, vLayout, yLayout: Layout
}

extension KernelLibrary {
    /// Per (batch, head): scores = q·kᵀ·scale into a [T, S] scratch row block, softmax, then ·v
    /// into y. Heads are spread over the team, one head per thread at a time with OpenBLAS
    /// single-threaded inside; each head is computed by exactly one thread, so results do not
    /// depend on the team size. The scratch is kept between calls (no allocation per launch once
    /// the largest attention of a plan has run).
    static func attentionHeads(_ o: AttentionOperands, scale: Float) {
        let count = o.batch * o.heads
        guard count > 0, o.queries > 0, o.keys > 0 else { return }
        let workers = max(1, min(Int(loom_get_num_threads()), count))
        let scratch = AttentionScratch.shared.buffer(floats: o.queries * o.keys * workers)
        let (t, s, d, e) = (o.queries, o.keys, o.depth, o.valueDepth)
        Threading.perEntryParallel(count) { worker, index in
            let (b, h) = (index / o.heads, index % o.heads)
            let scores = scratch + worker * t * s  // [T, S]
            let q = o.q + b * o.qLayout.batch + h * o.qLayout.head
            let k = o.k + b * o.kLayout.batch + h * o.kLayout.head
            let v = o.v + b * o.vLayout.batch + h * o.vLayout.head
            let y = o.y + b * o.yLayout.batch + h * o.yLayout.head
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(s), Int32(d), scale,
                        q, Int32(o.qLayout.row), k, Int32(o.kLayout.row), 0, scores, Int32(s))
            loom_softmax_rows(scores, scores, Int64(t), Int64(s))
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(e), Int32(s), 1,
                        scores, Int32(s), v, Int32(o.vLayout.row), 0, y, Int32(o.yLayout.row))
        }
    }
}

/// One grow-only scratch buffer for the attention kernels' score blocks, reused by every launch
/// (launches run one at a time per process; a lock guards the growth).
final class AttentionScratch: @unchecked Sendable {
    static let shared = AttentionScratch()
    private var storage: UnsafeMutablePointer<Float>?
    private var capacity = 0
    private let lock = NSLock()

    func buffer(floats: Int) -> UnsafeMutablePointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        if floats > capacity {
            storage?.deallocate()
            storage = UnsafeMutablePointer<Float>.allocate(capacity: floats)
            capacity = floats
        }
        return storage!
    }
}
