import CLoomKernels
import Foundation
import LoomTestSupport
import XCTest

/// Shared inputs, op tables and comparisons for the tests that check each CLoomKernels kernel
/// against a plain Swift reference computed in Double. Every subclass starts and ends on one thread.
class KernelTestCase: XCTestCase {

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

    // MARK: - Op tables

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

    static let binaryOps: [(loom_binary_op, String, (Double, Double) -> Double)] = [
        (LOOM_B_ADD, "add", { $0 + $1 }),
        (LOOM_B_SUB, "sub", { $0 - $1 }),
        (LOOM_B_MUL, "mul", { $0 * $1 }),
        (LOOM_B_DIV, "div", { $0 / $1 }),
        (LOOM_B_MAX, "max", { Swift.max($0, $1) }),
        (LOOM_B_MIN, "min", { Swift.min($0, $1) }),
    ]
}
