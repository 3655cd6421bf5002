import CLoomKernels
import LoomTestSupport
import XCTest

/// `loom_sgemm` (Loom's packed AVX2 GEMM) against a Double reference: every transpose combination,
/// shapes with edge tiles in both directions, depths beyond one depth block and widths beyond one
/// packed chunk, alpha, accumulation and bias; slabs of C give the bits of one call, and a
/// pre-packed B gives the bits of packing on the fly.
final class GemmKernelTests: XCTestCase {
    var rng = SplitMix64(state: 0x6E33)

    func random(_ n: Int) -> [Float] { (0..<n).map { _ in rng.float(-1, 1) } }

    /// op(A)·op(B)·alpha (+ c0) (+ bias) in Double, rounded to Float; matrices stored densely.
    func reference(ta: Bool, tb: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], b: [Float],
                   c0: [Float]?, bias: [Float]?) -> [Float] {
        var out = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let av = ta ? a[p * m + i] : a[i * k + p]
                    let bv = tb ? b[j * k + p] : b[p * n + j]
                    sum += Double(av) * Double(bv)
                }
                sum = sum * Double(alpha) + Double(c0?[i * n + j] ?? 0) + Double(bias?[j] ?? 0)
                out[i * n + j] = Float(sum)
            }
        }
        return out
    }

    func run(ta: Bool, tb: Bool, m: Int, n: Int, k: Int, alpha: Float = 1, accumulate: Bool = false, bias: Bool = false,
             rows: Range<Int>? = nil, cols: Range<Int>? = nil, c: inout [Float], a: [Float], b: [Float], biasValues: [Float]) {
        let rows = rows ?? 0..<m, cols = cols ?? 0..<n
        var scratch = [Float](repeating: 0, count: Int(loom_sgemm_scratch_floats(Int64(rows.count), Int64(cols.count), Int64(k))))
        let (lda, ldb) = (ta ? m : k, tb ? k : n)
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                biasValues.withUnsafeBufferPointer { biasp in
                    c.withUnsafeMutableBufferPointer { cp in
                        let aStart = ta ? ap.baseAddress! + rows.lowerBound : ap.baseAddress! + rows.lowerBound * lda
                        let bStart = tb ? bp.baseAddress! + cols.lowerBound * ldb : bp.baseAddress! + cols.lowerBound
                        loom_sgemm(ta ? 1 : 0, tb ? 1 : 0, Int64(rows.count), Int64(cols.count), Int64(k), alpha,
                                   aStart, Int64(lda), bStart, Int64(ldb), accumulate ? 1 : 0,
                                   cp.baseAddress! + rows.lowerBound * n + cols.lowerBound, Int64(n),
                                   bias ? biasp.baseAddress! + cols.lowerBound : nil, &scratch)
                    }
                }
            }
        }
    }

    func testAgainstDoubleReference() {
        // (m, n, k): edge tiles (m % 4, n % 24), k beyond one 384-deep block, n beyond one packed
        // chunk (2²⁰ / k columns), a single row.
        let shapes = [(7, 29, 5), (64, 200, 384), (37, 50, 800), (1, 300, 33), (3, 2700, 400), (100, 1, 17)]
        for (m, n, k) in shapes {
            let wide = m * n * k > 1 << 21  // the costly shape: fewer variants (debug builds)
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] where !wide || ta != tb {
                for (alpha, accumulate, bias) in [(Float(1), false, false), (0.5, true, true), (1, false, true)] where !wide || bias {
                    let a = random(m * k), b = random(k * n), c0 = random(m * n), biasValues = random(n)
                    var c = accumulate ? c0 : [Float](repeating: .nan, count: m * n)
                    run(ta: ta, tb: tb, m: m, n: n, k: k, alpha: alpha, accumulate: accumulate, bias: bias,
                        c: &c, a: a, b: b, biasValues: biasValues)
                    let expected = reference(ta: ta, tb: tb, m: m, n: n, k: k, alpha: alpha, a: a, b: b,
                                             c0: accumulate ? c0 : nil, bias: bias ? biasValues : nil)
                    let worst = zip(c, expected).map { abs(Double($0) - Double($1)) }.max()!
                    let scale = expected.map { abs(Double($0)) }.max()!
                    XCTAssertLessThanOrEqual(worst / scale, 2e-6, "m \(m) n \(n) k \(k) ta \(ta) tb \(tb) alpha \(alpha) acc \(accumulate) bias \(bias)")
                }
            }
        }
    }

    /// Row and column slabs of C, computed by separate calls, give exactly the bits of one call.
    func testSlabsGiveTheBitsOfOneCall() {
        let (m, n, k) = (70, 250, 450)
        for (ta, tb) in [(false, true), (true, false)] {
            let a = random(m * k), b = random(k * n), biasValues = random(n)
            var whole = [Float](repeating: 0, count: m * n)
            run(ta: ta, tb: tb, m: m, n: n, k: k, bias: true, c: &whole, a: a, b: b, biasValues: biasValues)
            var byRows = [Float](repeating: 0, count: m * n), byCols = byRows
            for rows in [0..<16, 16..<48, 48..<70] {
                run(ta: ta, tb: tb, m: m, n: n, k: k, bias: true, rows: rows, c: &byRows, a: a, b: b, biasValues: biasValues)
            }
            for cols in [0..<96, 96..<250] {
                run(ta: ta, tb: tb, m: m, n: n, k: k, bias: true, cols: cols, c: &byCols, a: a, b: b, biasValues: biasValues)
            }
            XCTAssertEqual(byRows, whole, "row slabs, ta \(ta) tb \(tb)")
            XCTAssertEqual(byCols, whole, "column slabs, ta \(ta) tb \(tb)")
        }
    }

    func testPrepackedWeightsGiveTheSameBits() {
        let (m, n, k) = (33, 200, 500)
        XCTAssertEqual(96 % Int(loom_sgemm_panel_width()), 0, "column slabs start on panel boundaries")
        let a = random(m * k), w = random(n * k), biasValues = random(n)
        var direct = [Float](repeating: 0, count: m * n)
        run(ta: false, tb: true, m: m, n: n, k: k, bias: true, c: &direct, a: a, b: w, biasValues: biasValues)
        var packed = [Float](repeating: 0, count: Int(loom_sgemm_packed_b_floats(Int64(n), Int64(k))))
        loom_sgemm_pack_b(1, Int64(n), Int64(k), w, Int64(k), &packed)
        var scratch = [Float](repeating: 0, count: Int(loom_sgemm_scratch_floats(Int64(m), Int64(n), Int64(k))))
        var viaPacked = [Float](repeating: 0, count: m * n)
        // Two column slabs from the packed weights, the second starting at panel 4 (column 96).
        let panel = Int(loom_sgemm_panel_width())
        for (c0, cols) in [(0, 96), (96, n - 96)] {
            packed.withUnsafeBufferPointer { pp in
                viaPacked.withUnsafeMutableBufferPointer { cp in
                    biasValues.withUnsafeBufferPointer { bp in
                        loom_sgemm_prepacked(0, Int64(m), Int64(cols), Int64(k), 1, a, Int64(k),
                                             pp.baseAddress! + c0 / panel * panel * k, 0, cp.baseAddress! + c0, Int64(n),
                                             bp.baseAddress! + c0, &scratch)
                    }
                }
            }
        }
        XCTAssertEqual(viaPacked, direct)
    }
}
