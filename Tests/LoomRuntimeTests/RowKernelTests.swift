import CLoomKernels
import Foundation
import LoomTestSupport
import XCTest

/// Row-wise kernels: softmax, layer and RMS norm, row gather and pair rotation.
final class RowKernelTests: KernelTestCase {

    // MARK: - Row-wise normalisations

    func testSoftmaxRows() {
        for (rows, cols) in [(1, 1), (3, 5), (4, 33), (2, 1000), (70, 600)] {
            var x = random(rows * cols, -6, 6)
            x[0] += 1000  // exp would overflow without the max subtraction
            var ref = [Double]()
            for r in 0..<rows {
                let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
                let m = row.max()!
                let e = row.map { Foundation.exp($0 - m) }
                let s = e.reduce(0, +)
                ref += e.map { $0 / s }
            }
            var y = [Float](repeating: .nan, count: x.count)
            loom_softmax_rows(x, &y, Int64(rows), Int64(cols))
            assertClose(y, ref, "softmax \(rows)x\(cols)")
            x.withUnsafeMutableBufferPointer { p in
                loom_softmax_rows(p.baseAddress, p.baseAddress, Int64(rows), Int64(cols))
            }
            XCTAssertEqual(bits(x), bits(y), "softmax in place")
        }
    }

    func testLayerNormAndRMSNormRows() {
        for (rows, cols) in [(1, 1), (3, 7), (5, 64), (2, 1000), (70, 600)] {
            var x = random(rows * cols)
            for i in 0..<x.count { x[i] += 3 }  // non-zero mean
            for eps: Float in [1e-5, 1e-6] {
                var ln = [Double](), rms = [Double]()
                for r in 0..<rows {
                    let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
                    let mean = row.reduce(0, +) / Double(cols)
                    let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(cols)
                    ln += row.map { ($0 - mean) / (variance + Double(eps)).squareRoot() }
                    let ms = row.map { $0 * $0 }.reduce(0, +) / Double(cols)
                    rms += row.map { $0 / (ms + Double(eps)).squareRoot() }
                }
                var y = [Float](repeating: .nan, count: x.count)
                loom_layernorm_rows(x, &y, Int64(rows), Int64(cols), eps)
                assertClose(y, ln, "layernorm \(rows)x\(cols)")
                loom_rmsnorm_rows(x, &y, Int64(rows), Int64(cols), eps)
                assertClose(y, rms, "rmsnorm \(rows)x\(cols)")
            }
            var z = x
            z.withUnsafeMutableBufferPointer { p in
                loom_layernorm_rows(p.baseAddress, p.baseAddress, Int64(rows), Int64(cols), 1e-5)
            }
            var y = [Float](repeating: .nan, count: x.count)
            loom_layernorm_rows(x, &y, Int64(rows), Int64(cols), 1e-5)
            XCTAssertEqual(bits(z), bits(y), "layernorm in place")
        }
    }

    // MARK: - Gather / rotate

    func testGatherRows() {
        let (rows, cols) = (10, 7)
        let table = random(rows * cols)
        let idx: [Int64] = [3, 0, 9, 3, 5]
        var y = [Float](repeating: .nan, count: idx.count * cols)
        XCTAssertEqual(loom_gather_rows(table, Int64(rows), Int64(cols), idx, Int64(idx.count), &y), -1)
        var ref = [Float]()
        for i in idx { ref += table[(Int(i) * cols)..<((Int(i) + 1) * cols)] }
        XCTAssertEqual(bits(y), bits(ref))
        // bad indices: the first bad position is reported and y is untouched
        for (bad, position) in [([1, 10, -1] as [Int64], Int64(1)), ([-1], 0), ([2, 3, 4, 100], 3)] {
            var out = [Float](repeating: 42, count: bad.count * cols)
            XCTAssertEqual(loom_gather_rows(table, Int64(rows), Int64(cols), bad, Int64(bad.count), &out), position)
            XCTAssertEqual(out, [Float](repeating: 42, count: bad.count * cols))
        }
        var none: [Float] = [1]
        XCTAssertEqual(loom_gather_rows(table, Int64(rows), Int64(cols), [], 0, &none), -1)
        XCTAssertEqual(none, [1])
    }

    func testRotatePairs() {
        for n in [2, 8, 1000, 70_000] {
            let x = random(n)
            var ref = [Float](repeating: 0, count: n)
            for k in 0..<(n / 2) {
                ref[2 * k] = -x[2 * k + 1]
                ref[2 * k + 1] = x[2 * k]
            }
            var y = [Float](repeating: .nan, count: n)
            loom_rotate_pairs(x, &y, Int64(n))
            XCTAssertEqual(bits(y), bits(ref), "rotate n=\(n)")
            var z = x
            z.withUnsafeMutableBufferPointer { p in loom_rotate_pairs(p.baseAddress, p.baseAddress, Int64(n)) }
            XCTAssertEqual(bits(z), bits(ref), "rotate in place n=\(n)")
        }
    }
}
