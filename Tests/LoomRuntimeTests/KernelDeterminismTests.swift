import CLoomKernels
import Foundation
import LoomTestSupport
import XCTest

/// Every kernel gives the same bits on one and on two threads.
final class KernelDeterminismTests: KernelTestCase {

    /// Runs every kernel on ~200k-element inputs and returns all outputs.
    func runAllKernels(_ x: [Float], _ x2: [Float]) -> [[Float]] {
        let n = x.count
        var outs = [[Float]]()
        for (op, _, _) in KernelTestCase.unaryOps {
            var y = [Float](repeating: 0, count: n)
            loom_unary(Int32(op.rawValue), x, &y, Int64(n))
            outs.append(y)
        }
        var y = [Float](repeating: 0, count: n)
        loom_affine(x, &y, Int64(n), 0.7, 0.1)
        outs.append(y)
        let shape = [50, 40, 100]  // n == 200_000
        for (op, _, _) in KernelTestCase.binaryOps {
            loom_binary(Int32(op.rawValue), 3, i64(shape), x, [4000, 100, 1], x2, [0, 100, 1], &y)
            outs.append(y)
            loom_binary(Int32(op.rawValue), 1, [Int64(n)], x, [1], x2, [1], &y)
            outs.append(y)
        }
        loom_strided_copy(3, [100, 50, 40], x, 0, [1, 4000, 100], &y, 0, [2000, 40, 1])
        outs.append(y)
        loom_strided_copy(3, [40, 100, 50], x, 0, [100, 1, 4000], &y, 0, [5000, 50, 1])
        outs.append(y)
        for mask: [Int32] in [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1]] {
            for op in [LOOM_R_SUM, LOOM_R_MEAN, LOOM_R_MAX] {
                var r = [Float](repeating: 0, count: n)
                loom_reduce(Int32(op.rawValue), 3, i64(shape), mask, x, &r)
                outs.append(r)
            }
        }
        loom_softmax_rows(x, &y, 400, 500)
        outs.append(y)
        loom_layernorm_rows(x, &y, 400, 500, 1e-5)
        outs.append(y)
        loom_rmsnorm_rows(x, &y, 2000, 100, 1e-6)
        outs.append(y)
        let idx = (0..<2000).map { Int64(($0 * 7919) % 2000) }
        XCTAssertEqual(loom_gather_rows(x, 2000, 100, idx, 2000, &y), -1)
        outs.append(y)
        loom_rotate_pairs(x, &y, Int64(n))
        outs.append(y)
        return outs
    }

    func testBitIdenticalAcrossThreadCounts() {
        let n = 200_000
        let x = random(n, -4, 4)
        let x2 = randomNonZero(n)
        loom_set_num_threads(1)
        XCTAssertEqual(loom_get_num_threads(), 1)
        let one = runAllKernels(x, x2)
        loom_set_num_threads(2)
        XCTAssertEqual(loom_get_num_threads(), 2)
        let two = runAllKernels(x, x2)
        loom_set_num_threads(1)
        XCTAssertEqual(one.count, two.count)
        for (i, (a, b)) in zip(one, two).enumerated() {
            XCTAssertTrue(bitIdentical(a, b), "output \(i) differs between 1 and 2 threads")
        }
        loom_set_num_threads(0)  // clamped
        XCTAssertEqual(loom_get_num_threads(), 1)
    }
}
