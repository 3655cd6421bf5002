import COpenBLAS
import LoomIR

extension OpKernels {
    /// Batched `A·B` with optional transposes and broadcast batch axes, one `cblas_sgemm` per batch
    /// entry; when B has no batch axes and A is not transposed, A's batch folds into M (one GEMM).
    static func matmul(_ a: HostTensor, _ b: HostTensor, transposeA: Bool, transposeB: Bool,
                       outShape: [Int]) -> HostTensor {
        let (ra, rb) = (a.shape.count, b.shape.count)
        let m = outShape[outShape.count - 2], n = outShape[outShape.count - 1]
        let k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1]
        var out = [Float](repeating: 0, count: outShape.reduce(1, *))
        guard !out.isEmpty else { return HostTensor(shape: outShape, floats: out) }
        let lda = Int32(a.shape[ra - 1]), ldb = Int32(b.shape[rb - 1])
        let opA = transposeA ? CblasTrans : CblasNoTrans, opB = transposeB ? CblasTrans : CblasNoTrans
        let batchShape = Array(outShape.dropLast(2))
        let batch = batchShape.reduce(1, *)
        a.floats.withUnsafeBufferPointer { pa in
            b.floats.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { py in
                    if rb == 2 && !transposeA {
                        cblas_sgemm(CblasRowMajor, opA, opB, Int32(batch * m), Int32(n), Int32(k), 1,
                                    pa.baseAddress, lda, pb.baseAddress, ldb, 0, py.baseAddress, Int32(n))
                        return
                    }
                    let strideA = broadcastStrides(Array(a.shape.dropLast(2)), to: batchShape)
                    let strideB = broadcastStrides(Array(b.shape.dropLast(2)), to: batchShape)
                    let matA = a.shape[ra - 2] * a.shape[ra - 1], matB = b.shape[rb - 2] * b.shape[rb - 1]
                    let batchStrides = rowMajorStrides(batchShape)
                    for index in 0..<batch {
                        var offA = 0, offB = 0, rest = index
                        for axis in batchShape.indices {
                            let coordinate = rest / batchStrides[axis]
                            rest %= batchStrides[axis]
                            offA += coordinate * Int(strideA[axis])
                            offB += coordinate * Int(strideB[axis])
                        }
                        cblas_sgemm(CblasRowMajor, opA, opB, Int32(m), Int32(n), Int32(k), 1,
                                    pa.baseAddress! + offA * matA, lda, pb.baseAddress! + offB * matB, ldb,
                                    0, py.baseAddress! + index * m * n, Int32(n))
                    }
                }
            }
        }
        return HostTensor(shape: outShape, floats: out)
    }
}
