import CLoomKernels
import LoomIR

extension KernelLibrary {
    /// Batched `op(A)·op(B)` with broadcast batch axes: whole entries spread over the threads, or each
    /// entry one GEMM split into slabs (`partitionedGEMM`); when B has no batch axes and A is not
    /// transposed, A's batch folds into M (one GEMM). `partition` is the plan's record (else the same
    /// rule, `LaunchPartition.matmul`).
    static func matmul(_ a: TensorRef, _ b: TensorRef, _ y: TensorRef, transposeA: Bool, transposeB: Bool,
                       partition: LaunchPartition? = nil) {
        guard y.count > 0 else { return }
        let (ra, rb) = (a.shape.count, b.shape.count)
        let m = y.shape[y.shape.count - 2], n = y.shape[y.shape.count - 1]
        let k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1]
        let lda = Int32(a.shape[ra - 1]), ldb = Int32(b.shape[rb - 1])
        let batchShape = Array(y.shape.dropLast(2))
        let batch = batchShape.reduce(1, *)
        let folds = LaunchPartition.matmulFoldsBatch(rankB: rb, transposeA: transposeA, batch: batch)
        let chosen = partition ?? LaunchPartition.matmul(batch: batch, m: m, n: n, k: k, foldsBatch: folds)
        if folds {
            partitionedGEMM(transposeA: transposeA, transposeB: transposeB, m: batch * m, n: n, k: k, alpha: 1,
                            a: a.floats, lda: Int(lda), b: b.floats, ldb: Int(ldb), c: y.floats, ldc: n, partition: chosen)
            return
        }
        let strideA = broadcastStrides(Array(a.shape.dropLast(2)), to: batchShape)
        let strideB = broadcastStrides(Array(b.shape.dropLast(2)), to: batchShape)
        let matA = a.shape[ra - 2] * a.shape[ra - 1], matB = b.shape[rb - 2] * b.shape[rb - 1]
        let batchStrides = rowMajorStrides(batchShape)
        let (ap, bp, yp) = (a.floats, b.floats, y.floats)
        /// Where entry `index` of the batch reads A and B.
        func operands(_ index: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
            var offA = 0, offB = 0, rest = index
            for axis in batchShape.indices {
                let coordinate = rest / batchStrides[axis]
                rest %= batchStrides[axis]
                offA += coordinate * Int(strideA[axis])
                offB += coordinate * Int(strideB[axis])
            }
            return (ap + offA * matA, bp + offB * matB)
        }
        // Small GEMMs (attention heads) waste a thread team on each call, and so do many large
        // ones: run whole entries on separate threads instead, each single-threaded. Otherwise each
        // entry is one GEMM split into slabs over the team.
        if chosen == .entries {
            Threading.perEntryParallel(batch) { worker, index in
                let (entryA, entryB) = operands(index)
                gemm(worker: worker, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                     a: entryA, lda: Int(lda), b: entryB, ldb: Int(ldb), c: yp + index * m * n, ldc: n)
            }
        } else {
            for index in 0..<batch {
                let (entryA, entryB) = operands(index)
                partitionedGEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                                a: entryA, lda: Int(lda), b: entryB, ldb: Int(ldb), c: yp + index * m * n, ldc: n,
                                partition: chosen)
            }
        }
    }

    /// Multiply-adds up to which a batched GEMM runs one entry per thread.
    static let perEntryGEMMLimit = 1 << 24
}
