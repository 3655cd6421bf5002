import CLoomKernels
import Foundation
import LoomTestSupport
import XCTest

/// Compares every kernel in CLoomKernels against a plain Swift reference computed in Double.
final class KernelTests: XCTestCase {

    // MARK: - Helpers

    var rng = SplitMix64(state: 0x5EED)

    func random(_ n: Int, _ lo: Float = -2, _ hi: Float = 2) -> [Float] {
        (0..<n).map { _ in rng.float(lo, hi) }
    }

    /// Values with |v| in [0.25, 2], for divisors and reciprocals.
    func randomNonZero(_ n: Int) -> [Float] {
        (0..<n).map { _ in (rng.next() & 1 == 0 ? 1 : -1) * rng.float(0.25, 2) }
    }

    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[d] = s
            s *= shape[d]
        }
        return strides
    }

    /// Calls body with every row-major multi-index of `shape` (once for rank 0).
    static func forEachIndex(_ shape: [Int], _ body: ([Int]) -> Void) {
        if shape.contains(0) { return }
        var idx = [Int](repeating: 0, count: shape.count)
        while true {
            body(idx)
            var d = shape.count - 1
            while d >= 0 {
                idx[d] += 1
                if idx[d] < shape[d] { break }
                idx[d] = 0
                d -= 1
            }
            if d < 0 { return }
        }
    }

    static func dot(_ idx: [Int], _ strides: [Int]) -> Int {
        var s = 0
        for d in 0..<idx.count { s += idx[d] * strides[d] }
        return s
    }

    /// max|got - ref| / max|ref| <= tol, NaN only where the reference is NaN.
    func assertClose(_ got: [Float], _ ref: [Double], tol: Double = 1e-5, _ message: String = "",
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, ref.count, "count \(message)", file: file, line: line)
        guard got.count == ref.count else { return }
        var maxDiff = 0.0, maxRef = 0.0
        for (g, r) in zip(got, ref) {
            if r.isNaN || g.isNaN {
                XCTAssertTrue(r.isNaN && g.isNaN, "NaN mismatch: got \(g) want \(r) \(message)",
                              file: file, line: line)
                continue
            }
            if r.isInfinite || g.isInfinite {
                XCTAssertEqual(Double(g), r, "inf mismatch \(message)", file: file, line: line)
                continue
            }
            maxDiff = max(maxDiff, abs(Double(g) - r))
            maxRef = max(maxRef, abs(r))
        }
        let rel = maxRef > 0 ? maxDiff / maxRef : maxDiff
        XCTAssertLessThanOrEqual(rel, tol, "relative error \(rel) \(message)", file: file, line: line)
    }

    func bits(_ a: [Float]) -> [UInt32] { a.map { $0.bitPattern } }

    func bitIdentical(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in memcmp(pa.baseAddress!, pb.baseAddress!, pa.count) == 0 }
        }
    }

    func i64(_ a: [Int]) -> [Int64] { a.map(Int64.init) }

    override func setUp() {
        super.setUp()
        loom_set_num_threads(1)
    }

    override func tearDown() {
        loom_set_num_threads(1)
        super.tearDown()
    }

    // MARK: - Unary / affine / fill

    static let unaryOps: [(loom_unary_op, String, (Double) -> Double)] = [
        (LOOM_U_NEG, "neg", { -$0 }),
        (LOOM_U_EXP, "exp", { Foundation.exp($0) }),
        (LOOM_U_LOG, "log", { Foundation.log($0) }),
        (LOOM_U_SQRT, "sqrt", { $0.squareRoot() }),
        (LOOM_U_RSQRT, "rsqrt", { 1 / $0.squareRoot() }),
        (LOOM_U_TANH, "tanh", { Foundation.tanh($0) }),
        (LOOM_U_SIN, "sin", { Foundation.sin($0) }),
        (LOOM_U_COS, "cos", { Foundation.cos($0) }),
        (LOOM_U_SILU, "silu", { $0 / (1 + Foundation.exp(-$0)) }),
        (LOOM_U_GELU_TANH, "gelu_tanh", { x in
            0.5 * x * (1 + Foundation.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) }),
        (LOOM_U_SIGMOID, "sigmoid", { 1 / (1 + Foundation.exp(-$0)) }),
        (LOOM_U_SQUARE, "square", { $0 * $0 }),
        (LOOM_U_ABS, "abs", { Swift.abs($0) }),
        (LOOM_U_RECIP, "recip", { 1 / $0 }),
        (LOOM_U_RELU, "relu", { Swift.max($0, 0) }),
        (LOOM_U_SIGN, "sign", { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }),
    ]

    func unaryInput(_ op: loom_unary_op, _ n: Int) -> [Float] {
        switch op {
        case LOOM_U_LOG, LOOM_U_SQRT, LOOM_U_RSQRT: return random(n, 0.05, 8)
        case LOOM_U_RECIP: return randomNonZero(n)
        case LOOM_U_EXP, LOOM_U_TANH, LOOM_U_SILU, LOOM_U_GELU_TANH, LOOM_U_SIGMOID:
            return random(n, -9, 9)
        default:
            var x = random(n, -3, 3)
            if n > 3 { x[0] = 0; x[1] = -0.0 }
            return x
        }
    }

    func testUnaryOpsMatchReference() {
        XCTAssertEqual(KernelTests.unaryOps.count, 16)
        for (op, name, f) in KernelTests.unaryOps {
            for n in [1, 7, 33, 1000, 20_000] {
                let x = unaryInput(op, n)
                var y = [Float](repeating: .nan, count: n)
                loom_unary(Int32(op.rawValue), x, &y, Int64(n))
                assertClose(y, x.map { f(Double($0)) }, "\(name) n=\(n)")
            }
            // in place
            var z = unaryInput(op, 257)
            let ref = z.map { f(Double($0)) }
            z.withUnsafeMutableBufferPointer { p in
                loom_unary(Int32(op.rawValue), p.baseAddress, p.baseAddress, 257)
            }
            assertClose(z, ref, "\(name) in place")
        }
    }

    func testUnaryEdgeCases() {
        func run(_ op: loom_unary_op, _ x: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: x.count)
            loom_unary(Int32(op.rawValue), x, &y, Int64(x.count))
            return y
        }
        let big: [Float] = [-1e30, -500, -100, -88, 88, 100, 500, 1e30, -.infinity, .infinity]
        for op in [LOOM_U_SIGMOID, LOOM_U_SILU, LOOM_U_TANH, LOOM_U_GELU_TANH] {
            for (x, y) in zip(big, run(op, big)) where x.isFinite {
                XCTAssertFalse(y.isNaN, "op \(op.rawValue) at \(x)")
            }
        }
        XCTAssertEqual(run(LOOM_U_SIGMOID, [-1e30, 1e30, 0]), [0, 1, 0.5])
        XCTAssertEqual(run(LOOM_U_TANH, [-.infinity, .infinity, 50, -50]), [-1, 1, 1, -1])
        XCTAssertEqual(run(LOOM_U_SILU, [1e30]), [1e30])
        XCTAssertEqual(run(LOOM_U_EXP, [-.infinity, .infinity, 0, 89, -110]), [0, .infinity, 1, .infinity, 0])
        XCTAssertTrue(run(LOOM_U_EXP, [.nan])[0].isNaN)
        XCTAssertTrue(run(LOOM_U_TANH, [.nan])[0].isNaN)
        // exp keeps per-element relative accuracy over the whole finite range, subnormals included
        let xs = (0..<2000).map { Float(-100 + 0.094 * Double($0)) }
        for (x, y) in zip(xs, run(LOOM_U_EXP, xs)) {
            let r = Foundation.exp(Double(x))
            XCTAssertLessThanOrEqual(abs(Double(y) - r), max(2e-7 * r, 1.5e-45), "exp(\(x))")
        }
        // small |x| tanh keeps relative accuracy
        let small: [Float] = [1e-20, -1e-6, 3e-3, 0.1, -0.39, 0.41]
        for (x, y) in zip(small, run(LOOM_U_TANH, small)) {
            XCTAssertEqual(Double(y), Foundation.tanh(Double(x)), accuracy: 3e-7 * abs(Double(x)))
        }
    }

    func testAffineAndFill() {
        for n in [1, 5, 100_000] {
            let x = random(n)
            var y = [Float](repeating: .nan, count: n)
            loom_affine(x, &y, Int64(n), 1.5, -0.25)
            assertClose(y, x.map { 1.5 * Double($0) - 0.25 }, "affine n=\(n)")
            y.withUnsafeMutableBufferPointer { p in loom_affine(p.baseAddress, p.baseAddress, Int64(n), -2, 1) }
            assertClose(y, x.map { -2 * (1.5 * Double($0) - 0.25) + 1 }, "affine in place n=\(n)")
            loom_fill(&y, Int64(n), 3.25)
            XCTAssertEqual(y, [Float](repeating: 3.25, count: n))
        }
    }

    // MARK: - Binary

    static let binaryOps: [(loom_binary_op, String, (Double, Double) -> Double)] = [
        (LOOM_B_ADD, "add", { $0 + $1 }),
        (LOOM_B_SUB, "sub", { $0 - $1 }),
        (LOOM_B_MUL, "mul", { $0 * $1 }),
        (LOOM_B_DIV, "div", { $0 / $1 }),
        (LOOM_B_MAX, "max", { Swift.max($0, $1) }),
        (LOOM_B_MIN, "min", { Swift.min($0, $1) }),
    ]

    /// One operand: storage plus element strides over the output shape.
    struct Operand {
        var data: [Float]
        var strides: [Int]
    }

    /// Contiguous storage of `opShape` (1 on broadcast axes) read through the output `shape`.
    func operand(_ opShape: [Int], nonZero: Bool = false) -> Operand {
        let n = opShape.reduce(1, *)
        var strides = KernelTests.contiguousStrides(opShape)
        for d in 0..<opShape.count where opShape[d] == 1 { strides[d] = 0 }
        return Operand(data: nonZero ? randomNonZero(n) : random(n), strides: strides)
    }

    func checkBinary(_ shape: [Int], _ a: Operand, _ b: Operand, _ label: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        let n = shape.reduce(1, *)
        for (op, name, f) in KernelTests.binaryOps {
            var y = [Float](repeating: .nan, count: n)
            loom_binary(Int32(op.rawValue), Int32(shape.count), i64(shape), a.data, i64(a.strides),
                        b.data, i64(b.strides), &y)
            var ref = [Double]()
            KernelTests.forEachIndex(shape) { idx in
                ref.append(f(Double(a.data[KernelTests.dot(idx, a.strides)]),
                             Double(b.data[KernelTests.dot(idx, b.strides)])))
            }
            assertClose(y, ref, "\(name) \(label)", file: file, line: line)
        }
    }

    func testBinaryBroadcasting() {
        let shape = [2, 3, 4]
        let full = operand(shape)
        checkBinary(shape, full, operand([2, 3, 4], nonZero: true), "same shape")
        checkBinary(shape, full, operand([1, 3, 1], nonZero: true), "[2,3,4] op [1,3,1]")
        checkBinary(shape, operand([1, 3, 1]), operand([2, 3, 4], nonZero: true), "[1,3,1] op [2,3,4]")
        checkBinary(shape, full, operand([1, 1, 4], nonZero: true), "row vector")
        checkBinary(shape, full, operand([1, 1, 1], nonZero: true), "scalar rhs")
        checkBinary(shape, operand([1, 1, 1]), operand([2, 3, 4], nonZero: true), "scalar lhs")
        checkBinary(shape, operand([2, 1, 4]), operand([1, 3, 1], nonZero: true), "both broadcast")
        checkBinary([], operand([]), operand([], nonZero: true), "rank 0")
        checkBinary([5], operand([5]), operand([5], nonZero: true), "rank 1")
        checkBinary([3, 700], operand([3, 700]), operand([1, 700], nonZero: true), "wide rows (chunked)")
        checkBinary([20, 3, 300], operand([20, 1, 300]), operand([20, 3, 300], nonZero: true), "several chunks")
        // a transposed view: storage [4, 3, 2] read as [2, 3, 4]
        let t = Operand(data: random(24), strides: [1, 2, 6])
        checkBinary(shape, t, operand([1, 3, 4], nonZero: true), "transposed lhs")
        // rank 8 with mixed broadcasting
        checkBinary([2, 1, 2, 3, 1, 2, 2, 3], operand([2, 1, 1, 3, 1, 2, 1, 3]),
                    operand([1, 1, 2, 3, 1, 1, 2, 1], nonZero: true), "rank 8")
        // empty: nothing written
        var y: [Float] = [7]
        loom_binary(Int32(LOOM_B_ADD.rawValue), 2, [2, 0], [1], [0, 0], [1], [0, 0], &y)
        XCTAssertEqual(y, [7])
    }

    func testBinaryRandomShapes() {
        for trial in 0..<40 {
            let rank = rng.int(below: 6)
            let shape = (0..<rank).map { _ in 1 + rng.int(below: 4) }
            let aShape = shape.map { rng.int(below: 3) == 0 ? 1 : $0 }
            let bShape = shape.map { rng.int(below: 3) == 0 ? 1 : $0 }
            checkBinary(shape, operand(aShape), operand(bShape, nonZero: true), "trial \(trial) \(shape)")
        }
    }

    func testBinaryNaNPropagationAndInPlace() {
        var y = [Float](repeating: 0, count: 2)
        loom_binary(Int32(LOOM_B_MAX.rawValue), 1, [2], [.nan, 1], [1], [0, .nan], [1], &y)
        XCTAssertTrue(y[0].isNaN && y[1].isNaN)
        loom_binary(Int32(LOOM_B_MIN.rawValue), 1, [2], [.nan, 1], [1], [0, .nan], [1], &y)
        XCTAssertTrue(y[0].isNaN && y[1].isNaN)
        // y aliases a
        var a = random(1000)
        let b = random(1000)
        let ref = zip(a, b).map { Double($0) + Double($1) }
        a.withUnsafeMutableBufferPointer { p in
            loom_binary(Int32(LOOM_B_ADD.rawValue), 1, [1000], p.baseAddress, [1], b, [1], p.baseAddress)
        }
        assertClose(a, ref, "in place add")
    }

    // MARK: - Strided copy

    /// Runs loom_strided_copy and its direct reference on copies of y.
    func checkCopy(_ shape: [Int], x: [Float], xOffset: Int, xStrides: [Int],
                   y y0: [Float], yOffset: Int, yStrides: [Int], _ label: String,
                   file: StaticString = #filePath, line: UInt = #line) -> [Float] {
        var y = y0
        loom_strided_copy(Int32(shape.count), i64(shape), x, Int64(xOffset), i64(xStrides),
                          &y, Int64(yOffset), i64(yStrides))
        var ref = y0
        KernelTests.forEachIndex(shape) { idx in
            ref[yOffset + KernelTests.dot(idx, yStrides)] = x[xOffset + KernelTests.dot(idx, xStrides)]
        }
        XCTAssertEqual(bits(y), bits(ref), label, file: file, line: line)
        return y
    }

    func permuted(_ shape: [Int], _ perm: [Int]) -> (shape: [Int], xStrides: [Int]) {
        let s = KernelTests.contiguousStrides(shape)
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
                              yStrides: KernelTests.contiguousStrides(outShape), "permute \(shape) \(perm)")
            // permuting back restores x
            var inverse = [Int](repeating: 0, count: perm.count)
            for (i, p) in perm.enumerated() { inverse[p] = i }
            let (backShape, backStrides) = permuted(outShape, inverse)
            XCTAssertEqual(backShape, shape)
            var z = [Float](repeating: .nan, count: x.count)
            loom_strided_copy(Int32(shape.count), i64(backShape), y, 0, i64(backStrides),
                              &z, 0, i64(KernelTests.contiguousStrides(shape)))
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
                          yStrides: KernelTests.contiguousStrides(shape), "patchify")
        // unpatchify: scatter back
        var back = [Float](repeating: .nan, count: x.count)
        loom_strided_copy(5, i64(shape), y, 0, i64(KernelTests.contiguousStrides(shape)),
                          &back, 0, i64(xStrides))
        XCTAssertEqual(bits(back), bits(x))
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
                          yStrides: KernelTests.contiguousStrides(outShape), "trial \(trial)")
        }
    }

    // MARK: - Reduce

    func reduceReference(_ op: loom_reduce_op, _ shape: [Int], _ mask: [Bool], _ x: [Float]) -> [Double] {
        let outShape = zip(shape, mask).filter { !$0.1 }.map(\.0)
        let keptStrides = KernelTests.contiguousStrides(outShape)
        var outStrides = [Int](repeating: 0, count: shape.count)  // 0 on reduced axes
        var k = 0
        for d in 0..<shape.count where !mask[d] {
            outStrides[d] = keptStrides[k]
            k += 1
        }
        let inStrides = KernelTests.contiguousStrides(shape)
        let outN = outShape.reduce(1, *)
        var sums = [Double](repeating: 0, count: outN)
        var maxes = [Double](repeating: -.infinity, count: outN)
        var count = 0
        KernelTests.forEachIndex(shape) { idx in
            let o = KernelTests.dot(idx, outStrides)
            let v = Double(x[KernelTests.dot(idx, inStrides)])
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

    // MARK: - Determinism across thread counts

    /// Runs every kernel on ~200k-element inputs and returns all outputs.
    func runAllKernels(_ x: [Float], _ x2: [Float]) -> [[Float]] {
        let n = x.count
        var outs = [[Float]]()
        for (op, _, _) in KernelTests.unaryOps {
            var y = [Float](repeating: 0, count: n)
            loom_unary(Int32(op.rawValue), x, &y, Int64(n))
            outs.append(y)
        }
        var y = [Float](repeating: 0, count: n)
        loom_affine(x, &y, Int64(n), 0.7, 0.1)
        outs.append(y)
        let shape = [50, 40, 100]  // n == 200_000
        for (op, _, _) in KernelTests.binaryOps {
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
