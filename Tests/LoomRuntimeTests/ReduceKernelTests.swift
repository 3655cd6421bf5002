import CLoomKernels
import Foundation
import LoomTestSupport
import XCTest

/// Sum, mean and max reductions over any axis mask against Double references.
final class ReduceKernelTests: KernelTestCase {

    func reduceReference(_ op: loom_reduce_op, _ shape: [Int], _ mask: [Bool], _ x: [Float]) -> [Double] {
        let outShape = zip(shape, mask).filter { !$0.1 }.map(\.0)
        let keptStrides = KernelTestCase.contiguousStrides(outShape)
        var outStrides = [Int](repeating: 0, count: shape.count)  // 0 on reduced axes
        var k = 0
        for d in 0..<shape.count where !mask[d] {
            outStrides[d] = keptStrides[k]
            k += 1
        }
        let inStrides = KernelTestCase.contiguousStrides(shape)
        let outN = outShape.reduce(1, *)
        var sums = [Double](repeating: 0, count: outN)
        var maxes = [Double](repeating: -.infinity, count: outN)
        var count = 0
        KernelTestCase.forEachIndex(shape) { idx in
            let o = KernelTestCase.dot(idx, outStrides)
            let v = Double(x[KernelTestCase.dot(idx, inStrides)])
            sums[o] += v
            maxes[o] = Swift.max(maxes[o], v)
            if o == 0 { count += 1 }
        }
        switch op {
        case LOOM_R_SUM: return sums
        case LOOM_R_MEAN: return sums.map { $0 / Double(count) }
        default: return maxes
        }
    }

    func checkReduce(_ shape: [Int], _ mask: [Bool], file: StaticString = #filePath, line: UInt = #line) {
        let x = random(shape.reduce(1, *))
        let outN = zip(shape, mask).filter { !$0.1 }.map(\.0).reduce(1, *)
        for op in [LOOM_R_SUM, LOOM_R_MEAN, LOOM_R_MAX] {
            var y = [Float](repeating: .nan, count: outN)
            loom_reduce(Int32(op.rawValue), Int32(shape.count), i64(shape), mask.map { Int32($0 ? 1 : 0) }, x, &y)
            assertClose(y, reduceReference(op, shape, mask, x), "op \(op.rawValue) \(shape) \(mask)",
                        file: file, line: line)
        }
    }

    func testReduceAxisMasks() {
        let s = [3, 4, 5]
        checkReduce(s, [true, false, false])   // first
        checkReduce(s, [false, true, false])   // middle
        checkReduce(s, [false, false, true])   // last
        checkReduce(s, [true, false, true])    // several, separated
        checkReduce(s, [true, true, false])    // several, adjacent
        checkReduce(s, [true, true, true])     // all
        checkReduce(s, [false, false, false])  // none
        checkReduce([3, 1, 4], [false, true, false])
        checkReduce([3, 1, 4], [true, false, true])
        checkReduce([], [])                    // rank 0
        checkReduce([7], [true])
        checkReduce([2, 5, 600], [false, true, false])   // column path, several column blocks
        checkReduce([64, 1000], [false, true])           // rows path, long rows
        checkReduce([2, 3, 2, 3, 2], [true, false, true, false, true])
        checkReduce([2, 3, 4, 5, 2], [false, true, false, true, false])
    }

    func testReduceRandomMasks() {
        for _ in 0..<25 {
            let rank = 1 + rng.int(below: 5)
            let shape = (0..<rank).map { _ in 1 + rng.int(below: 4) }
            checkReduce(shape, shape.map { _ in rng.int(below: 2) == 0 })
        }
    }

    func testReduceEmptyAxisAndNaN() {
        var y = [Float](repeating: 5, count: 3)
        loom_reduce(Int32(LOOM_R_SUM.rawValue), 2, [3, 0], [0, 1], [], &y)
        XCTAssertEqual(y, [0, 0, 0])
        loom_reduce(Int32(LOOM_R_MAX.rawValue), 2, [3, 0], [0, 1], [], &y)
        XCTAssertEqual(y, [-.infinity, -.infinity, -.infinity])
        loom_reduce(Int32(LOOM_R_MAX.rawValue), 1, [4], [1], [1, .nan, 3, 2], &y)
        XCTAssertTrue(y[0].isNaN)
    }
}
