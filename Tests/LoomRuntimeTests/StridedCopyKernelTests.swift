import CLoomKernels
import Foundation
import LoomTestSupport
import XCTest

/// Strided copies (permute, slice, concat, broadcast, patchify) against a direct index walk.
final class StridedCopyKernelTests: KernelTestCase {

    /// Runs loom_strided_copy and its direct reference on copies of y.
    func checkCopy(_ shape: [Int], x: [Float], xOffset: Int, xStrides: [Int],
                   y y0: [Float], yOffset: Int, yStrides: [Int], _ label: String,
                   file: StaticString = #filePath, line: UInt = #line) -> [Float] {
        var y = y0
        loom_strided_copy(Int32(shape.count), i64(shape), x, Int64(xOffset), i64(xStrides),
                          &y, Int64(yOffset), i64(yStrides))
        var ref = y0
        KernelTestCase.forEachIndex(shape) { idx in
            ref[yOffset + KernelTestCase.dot(idx, yStrides)] = x[xOffset + KernelTestCase.dot(idx, xStrides)]
        }
        XCTAssertEqual(bits(y), bits(ref), label, file: file, line: line)
        return y
    }

    func permuted(_ shape: [Int], _ perm: [Int]) -> (shape: [Int], xStrides: [Int]) {
        let s = KernelTestCase.contiguousStrides(shape)
        return (perm.map { shape[$0] }, perm.map { s[$0] })
    }

    func testStridedCopyPermute() {
        for (shape, perm) in [([2, 3, 4, 5], [0, 2, 3, 1]), ([2, 3, 4, 5], [3, 2, 1, 0]),
                              ([70, 90], [1, 0]), ([3, 40, 50], [0, 2, 1]), ([5, 6, 7], [1, 0, 2]),
                              ([2, 1, 3, 1, 4], [4, 2, 0, 3, 1])] {
            let x = random(shape.reduce(1, *))
            let (outShape, xStrides) = permuted(shape, perm)
            let y = checkCopy(outShape, x: x, xOffset: 0, xStrides: xStrides,
                              y: [Float](repeating: .nan, count: x.count), yOffset: 0,
                              yStrides: KernelTestCase.contiguousStrides(outShape), "permute \(shape) \(perm)")
            // permuting back restores x
            var inverse = [Int](repeating: 0, count: perm.count)
            for (i, p) in perm.enumerated() { inverse[p] = i }
            let (backShape, backStrides) = permuted(outShape, inverse)
            XCTAssertEqual(backShape, shape)
            var z = [Float](repeating: .nan, count: x.count)
            loom_strided_copy(Int32(shape.count), i64(backShape), y, 0, i64(backStrides),
                              &z, 0, i64(KernelTestCase.contiguousStrides(shape)))
            XCTAssertEqual(bits(z), bits(x))
        }
    }

    func testStridedCopySliceConcatBroadcast() {
        // slice x[1:3, ::2, 1:] of a [4, 6, 5] tensor
        let x = random(4 * 6 * 5)
        _ = checkCopy([2, 3, 4], x: x, xOffset: 30 + 1, xStrides: [30, 10, 1],
                      y: [Float](repeating: .nan, count: 24), yOffset: 0, yStrides: [12, 4, 1], "slice")
        // concat [2, 3, 4] and [2, 5, 4] along axis 1 into [2, 8, 4]
        let p = random(24), q = random(40)
        var y = [Float](repeating: .nan, count: 64)
        y = checkCopy([2, 3, 4], x: p, xOffset: 0, xStrides: [12, 4, 1], y: y, yOffset: 0,
                      yStrides: [32, 4, 1], "concat part 1")
        y = checkCopy([2, 5, 4], x: q, xOffset: 0, xStrides: [20, 4, 1], y: y, yOffset: 12,
                      yStrides: [32, 4, 1], "concat part 2")
        XCTAssertFalse(y.contains { $0.isNaN })
        // broadcast [1, 4] -> [3, 4] and scalar -> [2, 2]
        _ = checkCopy([3, 4], x: [1, 2, 3, 4], xOffset: 0, xStrides: [0, 1],
                      y: [Float](repeating: .nan, count: 12), yOffset: 0, yStrides: [4, 1], "broadcast row")
        _ = checkCopy([2, 2], x: [9], xOffset: 0, xStrides: [0, 0],
                      y: [Float](repeating: .nan, count: 4), yOffset: 0, yStrides: [2, 1], "broadcast scalar")
        _ = checkCopy([50, 40], x: random(50), xOffset: 0, xStrides: [1, 0],
                      y: [Float](repeating: .nan, count: 2000), yOffset: 0, yStrides: [40, 1], "broadcast col")
        // rank 0 with offsets, reversed axis (negative stride), strided destination
        _ = checkCopy([], x: [1, 2, 3], xOffset: 2, xStrides: [], y: [0, 0], yOffset: 1, yStrides: [],
                      "rank 0")
        _ = checkCopy([3, 5], x: x, xOffset: 4, xStrides: [5, -1],
                      y: [Float](repeating: .nan, count: 15), yOffset: 0, yStrides: [5, 1], "flip")
        _ = checkCopy([3, 5], x: x, xOffset: 0, xStrides: [5, 1],
                      y: [Float](repeating: .nan, count: 30), yOffset: 1, yStrides: [10, 2], "strided dst")
        // empty: nothing written
        var one: [Float] = [7]
        loom_strided_copy(2, [0, 3], x, 0, [3, 1], &one, 0, [3, 1])
        XCTAssertEqual(one, [7])
    }

    func testStridedCopyPatchify() {
        // [C, H, W] = [3, 8, 6], p = 2 -> [(H/p)(W/p), p*p*C] with token layout (hp, wp, ph, pw, c)
        let (c, h, w, p) = (3, 8, 6, 2)
        let x = random(c * h * w)
        let shape = [h / p, w / p, p, p, c]
        let xStrides = [p * w, p, w, 1, h * w]
        let y = checkCopy(shape, x: x, xOffset: 0, xStrides: xStrides,
                          y: [Float](repeating: .nan, count: x.count), yOffset: 0,
                          yStrides: KernelTestCase.contiguousStrides(shape), "patchify")
        // unpatchify: scatter back
        var back = [Float](repeating: .nan, count: x.count)
        loom_strided_copy(5, i64(shape), y, 0, i64(KernelTestCase.contiguousStrides(shape)),
                          &back, 0, i64(xStrides))
        XCTAssertEqual(bits(back), bits(x))
    }

    /// More elements than one chunk of the kernel's walk (16,384), with rows that straddle chunk
    /// edges, strided on both sides so that no axes merge: whole-row runs and partial rows.
    func testStridedCopyRowsCrossingChunkEdges() {
        let shape = [30, 700]
        let x = random(30 * 1400 + 3)
        _ = checkCopy(shape, x: x, xOffset: 3, xStrides: [1400, 2],
                      y: [Float](repeating: .nan, count: 30 * 701 + 5), yOffset: 5, yStrides: [701, 1],
                      "every other element into padded rows")
        _ = checkCopy([3, 10, 700], x: random(700), xOffset: 0, xStrides: [0, 0, 1],
                      y: [Float](repeating: .nan, count: 3 * 10 * 703), yOffset: 0, yStrides: [10 * 703, 703, 1],
                      "a broadcast row into padded rows")
    }

    func testStridedCopyRandom() {
        for trial in 0..<30 {
            let rank = rng.int(below: 6)
            let shape = (0..<rank).map { _ in 1 + rng.int(below: 5) }
            let perm = Array(0..<rank).shuffled(using: &rng)
            let base = shape
            let x = random(max(1, base.reduce(1, *)))
            let (outShape, xStrides) = permuted(base, perm)
            _ = checkCopy(outShape, x: x, xOffset: 0, xStrides: xStrides,
                          y: [Float](repeating: .nan, count: x.count), yOffset: 0,
                          yStrides: KernelTestCase.contiguousStrides(outShape), "trial \(trial)")
        }
    }
}
