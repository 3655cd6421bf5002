import Foundation
import LoomCompiler
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining
import LoomData

/// The step's GEMM implementation alone on a plan's GEMM shapes: the roofline a step's achieved
/// GFLOP/s is compared with.
public enum GemmRoofline {
    /// One GEMM shape of a plan and how many times a step runs it.
    public struct Shape: Hashable, Sendable, CustomStringConvertible {
        public var m: Int, n: Int, k: Int
        public var transposeA: Bool, transposeB: Bool
        public var macs: Int { m * n * k }
        public var description: String { "\(m)×\(n)×\(k)" + (transposeA ? " Aᵀ" : "") + (transposeB ? " Bᵀ" : "") }
    }

    /// The GEMMs one run of `graph` issues, as the kernels issue them: a matmul whose right
    /// operand is a matrix is one GEMM over the folded batch, a batched matmul one GEMM per batch
    /// entry, a fused linear one GEMM, and fused attention two GEMMs per (image, head).
    public static func shapes(of graph: Graph) -> [Shape: Int] {
        var counts: [Shape: Int] = [:]
        for node in graph.nodes {
            let operands = node.inputs.map { graph.nodes[$0].type.shape }
            let out = node.type.shape
            switch node.op {
            case .matmul(let ta, let tb):
                let a = operands[0], b = operands[1]
                let m = out[out.count - 2], n = out[out.count - 1]
                let k = ta ? a[a.count - 2] : a[a.count - 1]
                let batch = out.dropLast(2).reduce(1, *)
                if b.count == 2 && !ta {
                    counts[Shape(m: batch * m, n: n, k: k, transposeA: ta, transposeB: tb), default: 0] += 1
                } else {
                    counts[Shape(m: m, n: n, k: k, transposeA: ta, transposeB: tb), default: 0] += batch
                }
            case .fused(.linear):
                let k = operands[0].last ?? 1
                let n = out.last ?? 1
                let m = out.reduce(1, *) / max(n, 1)
                counts[Shape(m: m, n: n, k: k, transposeA: false, transposeB: true), default: 0] += 1
            case .fused(.attention):
                let q = operands[0], v = operands[2]
                let (heads, t, d, s, e) = (q[0] * q[1], q[2], q[3], operands[1][2], v[3])
                counts[Shape(m: t, n: s, k: d, transposeA: false, transposeB: true), default: 0] += heads
                counts[Shape(m: t, n: e, k: s, transposeA: false, transposeB: false), default: 0] += heads
            case .fused(.tokenAttentionBackward(let heads, _)):
                let (t, d, n) = (operands[0][1], operands[0][2] / 3 / heads, operands[0][0] * heads)
                counts[Shape(m: t, n: t, k: d, transposeA: false, transposeB: true), default: 0] += 2 * n   // q·kᵀ, dy·vᵀ
                counts[Shape(m: t, n: d, k: t, transposeA: true, transposeB: false), default: 0] += 2 * n   // Pᵀ·dy, dSᵀ·q
                counts[Shape(m: t, n: d, k: t, transposeA: false, transposeB: false), default: 0] += n      // dS·k
            case .fused(.tokenAttention(let heads, _)):
                let (t, d) = (operands[0][1], operands[0][2] / 3 / heads)
                counts[Shape(m: t, n: t, k: d, transposeA: false, transposeB: true), default: 0] += operands[0][0] * heads
                counts[Shape(m: t, n: d, k: t, transposeA: false, transposeB: false), default: 0] += operands[0][0] * heads
            default:
                break
            }
        }
        return counts
    }

    /// Total multiply-adds of `shapes`.
    public static func macs(_ shapes: [Shape: Int]) -> Int { shapes.reduce(0) { $0 + $1.key.macs * $1.value } }

    /// The step's own GEMM (`kernels`, in `precision`) alone on every shape, each timed as the best
    /// of `repeats` runs of its whole count, the better of two ways: one GEMM at a time split over
    /// the team as a step splits it, and (for counts of at least `threads`) whole GEMMs spread over
    /// the threads, each single-threaded. Returns total FLOPs over total seconds.
    public static func gemmGFLOPs(_ shapes: [Shape: Int], threads: Int, precision: PrecisionPolicy = .fp32,
                                  kernels: KernelSelection = .current, repeats: Int = 3) -> Double {
        Threading.setThreads(threads)
        kernels.apply()
        var seconds = 0.0
        var flops = 0.0
        for (shape, count) in shapes.sorted(by: { $0.key.macs > $1.key.macs }) {
            let workers = count >= threads ? threads : 1
            let a = [Float](repeating: 0.5, count: shape.m * shape.k)
            let b = [Float](repeating: 0.25, count: shape.k * shape.n)
            // One output per worker, so concurrent GEMMs do not share a destination.
            let c = UnsafeMutablePointer<Float>.allocate(capacity: shape.m * shape.n * workers)
            defer { c.deallocate() }
            let gemm = KernelLibrary.StandaloneGEMM(transposeA: shape.transposeA, transposeB: shape.transposeB,
                                                    m: shape.m, n: shape.n, k: shape.k, precision: precision)
            func time(_ body: () -> Void) -> Double {
                var best = Double.infinity
                for _ in 0..<repeats {
                    let start = DispatchTime.now().uptimeNanoseconds
                    body()
                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
                return best
            }
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    gemm.run(a: ap.baseAddress!, b: bp.baseAddress!, c: c)  // creates library kernels
                    var best = time { for _ in 0..<count { gemm.run(a: ap.baseAddress!, b: bp.baseAddress!, c: c) } }
                    if workers > 1 {
                        best = min(best, time {
                            Threading.perEntryParallel(count) { worker, _ in
                                gemm.run(a: ap.baseAddress!, b: bp.baseAddress!, c: c + worker * shape.m * shape.n,
                                         worker: worker)
                            }
                        })
                    }
                    seconds += best
                }
            }
            flops += 2 * Double(shape.macs) * Double(count)
        }
        return seconds > 0 ? flops / seconds / 1e9 : 0
    }
}
