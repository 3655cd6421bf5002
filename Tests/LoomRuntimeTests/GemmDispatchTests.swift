import CLoomKernels
import LoomIR
@testable import LoomRuntime
import LoomTestSupport
import XCTest

/// `loom_gemm` on every implementation this machine can run (Loom's own GEMM; oneDNN fp32; bf16
/// through oneDNN where the CPU has bf16 instructions, else emulated) against a Double reference:
/// fp32 on the operands as given, bf16 on operands rounded to bf16 (nearest, ties to even).
final class GemmDispatchTests: XCTestCase {
    var rng = SplitMix64(state: 0xB16)

    override func tearDown() {
        loom_gemm_set_precision(LOOM_PRECISION_F32)
        KernelSelection.current.apply()
    }

    func random(_ n: Int) -> [Float] { (0..<n).map { _ in rng.float(-1, 1) } }

    /// The selections to test: every fp32 provider, every bf16 mode the CPU runs.
    var selections: [KernelSelection] {
        var out = [KernelSelection(isa: .avx2, f32: .own, bf16: .emulated),
                   KernelSelection(isa: .avx2, f32: .onednn, bf16: .emulated)]
        if KernelSelection.current.bf16 == .onednn { out.append(KernelSelection(isa: .avx512, f32: .onednn, bf16: .onednn)) }
        return out
    }

    static func bf16(_ x: Float) -> Float {
        var y: Float = 0
        var v = x
        loom_round_to_bf16(&v, &y, 1)
        return y
    }

    func reference(ta: Bool, tb: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], b: [Float],
                   c0: [Float]?, bias: [Float]?, bf16: Bool) -> [Float] {
        let round: (Float) -> Double = { bf16 ? Double(Self.bf16($0)) : Double($0) }
        var out = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    sum += round(ta ? a[p * m + i] : a[i * k + p]) * round(tb ? b[j * k + p] : b[p * n + j])
                }
                out[i * n + j] = Float(sum * Double(alpha) + Double(c0?[i * n + j] ?? 0) + Double(bias?[j] ?? 0))
            }
        }
        return out
    }

    func gemm(ta: Bool, tb: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], b: [Float], c: inout [Float],
              accumulate: Bool, bias: [Float]?) {
        var scratch = [Float](repeating: 0, count: Int(loom_gemm_scratch_floats(Int64(m), Int64(n), Int64(k))))
        let biasValues = bias ?? [0]
        loom_gemm(ta ? 1 : 0, tb ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha, a, Int64(ta ? m : k), b,
                  Int64(tb ? k : n), accumulate ? 1 : 0, &c, Int64(n), bias == nil ? nil : biasValues, &scratch)
    }

    func testEveryImplementationAgainstTheReference() {
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (5, 7, 3), (64, 64, 64), (33, 100, 70), (256, 24, 64), (17, 200, 129)]
        for selection in selections {
            selection.apply()
            for precision in [LOOM_PRECISION_F32, LOOM_PRECISION_BF16] {
                loom_gemm_set_precision(precision)
                for (m, n, k) in shapes {
                    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                        for (alpha, accumulate, withBias) in [(Float(1), false, false), (1, false, true), (0.125, false, false),
                                                              (1, true, false), (0.5, true, true)] {
                            let a = random(m * k), b = random(k * n), c0 = random(m * n)
                            let bias = withBias ? random(n) : nil
                            var c = accumulate ? c0 : [Float](repeating: .nan, count: m * n)
                            gemm(ta: ta, tb: tb, m: m, n: n, k: k, alpha: alpha, a: a, b: b, c: &c, accumulate: accumulate, bias: bias)
                            let expected = reference(ta: ta, tb: tb, m: m, n: n, k: k, alpha: alpha, a: a, b: b,
                                                     c0: accumulate ? c0 : nil, bias: bias, bf16: precision == LOOM_PRECISION_BF16)
                            let scale = expected.map { abs($0) }.max()! + 1e-6
                            let error = zip(c, expected).map { abs($0 - $1) }.max()! / scale
                            XCTAssertLessThan(error, 1e-5, "\(selection) \(precision == LOOM_PRECISION_BF16 ? "bf16" : "fp32") "
                                              + "\(m)×\(n)×\(k) ta \(ta) tb \(tb) alpha \(alpha) acc \(accumulate) bias \(withBias)")
                        }
                    }
                }
            }
        }
    }

    /// bf16 really rounds: the bf16 result differs from the fp32 one by about 2^-8 relative, and
    /// the fp32 result is not within the bf16 reference's tight bound.
    func testBF16DiffersFromFP32() {
        let (m, n, k) = (32, 48, 256)
        let a = random(m * k), b = random(k * n)
        for selection in selections {
            selection.apply()
            var c32 = [Float](repeating: 0, count: m * n), c16 = c32
            loom_gemm_set_precision(LOOM_PRECISION_F32)
            gemm(ta: false, tb: true, m: m, n: n, k: k, alpha: 1, a: a, b: b, c: &c32, accumulate: false, bias: nil)
            loom_gemm_set_precision(LOOM_PRECISION_BF16)
            gemm(ta: false, tb: true, m: m, n: n, k: k, alpha: 1, a: a, b: b, c: &c16, accumulate: false, bias: nil)
            let scale = c32.map { abs($0) }.max()!
            let difference = zip(c32, c16).map { abs($0 - $1) }.max()! / scale
            XCTAssertGreaterThan(difference, 1e-4, "\(selection)")
            XCTAssertLessThan(difference, 2e-2, "\(selection)")
        }
    }

    func testRoundingIsNearestTiesToEven() {
        let one: Float = 1, ulp = Float(1) / 128  // bf16 keeps 7 fraction bits
        XCTAssertEqual(Self.bf16(one + ulp / 2), one)                 // tie: stays on the even 1.0
        XCTAssertEqual(Self.bf16(one + 3 * ulp / 2), one + 2 * ulp)   // tie: goes up to the even neighbour
        XCTAssertEqual(Self.bf16(one + ulp * 0.51), one + ulp)
        XCTAssertEqual(Self.bf16(-(one + ulp * 0.49)), -one)
        XCTAssertEqual(Self.bf16(.infinity), .infinity)
        XCTAssertTrue(Self.bf16(.nan).isNaN)
        XCTAssertEqual(Self.bf16(Float.greatestFiniteMagnitude), .infinity)  // rounds past the largest bf16
    }

    /// Operands read through a leading dimension wider than their rows (a head's slice of a fused
    /// QKV buffer): in bf16 they give the bits of the same GEMM on contiguous copies, on every
    /// implementation (the rounded copies are the same); in fp32 the same values within 1e-5.
    func testStridedOperandsGiveTheBitsOfContiguousOnes() {
        for selection in selections {
            selection.apply()
            for precision in [LOOM_PRECISION_F32, LOOM_PRECISION_BF16] {
                loom_gemm_set_precision(precision)
                for (m, n, k, pad) in [(64, 64, 32, 352), (7, 33, 5, 3), (40, 24, 48, 80)] {
                    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                        // Stored shapes [rows, cols] of A and B, each inside a buffer `pad` wider.
                        let (aRows, aCols) = ta ? (k, m) : (m, k)
                        let (bRows, bCols) = tb ? (n, k) : (k, n)
                        let aWide = random(aRows * (aCols + pad)), bWide = random(bRows * (bCols + pad))
                        let a = (0..<aRows).flatMap { r in aWide[(r * (aCols + pad))..<(r * (aCols + pad) + aCols)] }
                        let b = (0..<bRows).flatMap { r in bWide[(r * (bCols + pad))..<(r * (bCols + pad) + bCols)] }
                        var contiguous = [Float](repeating: 0, count: m * n)
                        gemm(ta: ta, tb: tb, m: m, n: n, k: k, alpha: 1, a: a, b: b, c: &contiguous, accumulate: false, bias: nil)
                        var strided = [Float](repeating: .nan, count: m * n)
                        var scratch = [Float](repeating: 0, count: Int(loom_gemm_scratch_floats(Int64(m), Int64(n), Int64(k))))
                        loom_gemm(ta ? 1 : 0, tb ? 1 : 0, Int64(m), Int64(n), Int64(k), 1, aWide, Int64(aCols + pad), bWide,
                                  Int64(bCols + pad), 0, &strided, Int64(n), nil, &scratch)
                        let label = "\(selection) \(precision == LOOM_PRECISION_BF16 ? "bf16" : "fp32") \(m)×\(n)×\(k) ta \(ta) tb \(tb)"
                        if precision == LOOM_PRECISION_BF16 {
                            XCTAssertEqual(strided.map(\.bitPattern), contiguous.map(\.bitPattern), label)
                        } else {
                            // fp32 reads the operands in place: oneDNN may pick another kernel for other strides.
                            let scale = contiguous.map { abs($0) }.max()! + 1e-6
                            XCTAssertLessThan(zip(strided, contiguous).map { abs($0 - $1) }.max()! / scale, 1e-5, label)
                        }
                    }
                }
            }
        }
    }

    /// A GEMM split over the team gives the bits of one thread, on every implementation.
    func testSplitsAreBitIdenticalAcrossTeamSizes() {
        let (m, n, k) = (200, 300, 96)
        let a = random(m * k), b = random(k * n)
        for selection in selections {
            selection.apply()
            for precision in [PrecisionPolicy.fp32, .bf16] {
                loom_gemm_set_precision(precision == .bf16 ? LOOM_PRECISION_BF16 : LOOM_PRECISION_F32)
                var results: [[Float]] = []
                for threads in [1, 2] {
                    Threading.setThreads(threads)
                    var c = [Float](repeating: 0, count: m * n)
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            c.withUnsafeMutableBufferPointer { cp in
                                KernelLibrary.partitionedGEMM(transposeA: false, transposeB: true, m: m, n: n, k: k, alpha: 1,
                                                              a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k,
                                                              c: cp.baseAddress!, ldc: n, partition: .rows)
                            }
                        }
                    }
                    results.append(c)
                }
                XCTAssertEqual(results[0], results[1], "\(selection) \(precision)")
            }
        }
        Threading.setThreads(Threading.defaultThreads)
    }

    /// oneDNN keeps each primitive's argument memory objects per thread and only repoints them at
    /// each call's buffers: calls of one shape on other buffers, from both threads of a team at
    /// once, each give the bits of the same GEMM computed alone.
    func testRepeatedShapesOnOtherBuffersAndThreads() {
        let (m, n, k) = (64, 64, 32)  // a per-head attention GEMM of a small model
        let calls = 8
        let operands = (0..<calls).map { _ in (a: random(m * k), b: random(n * k)) }
        for selection in selections {
            selection.apply()
            for precision in [LOOM_PRECISION_F32, LOOM_PRECISION_BF16] {
                loom_gemm_set_precision(precision)
                let alone: [[Float]] = operands.map { operand in
                    var c = [Float](repeating: .nan, count: m * n)
                    gemm(ta: false, tb: true, m: m, n: n, k: k, alpha: 0.25, a: operand.a, b: operand.b, c: &c,
                         accumulate: false, bias: nil)
                    return c
                }
                let results = UnsafeMutablePointer<Float>.allocate(capacity: calls * m * n)
                defer { results.deallocate() }
                results.initialize(repeating: .nan, count: calls * m * n)
                Threading.setThreads(2)
                Threading.perEntryParallel(calls * 4) { worker, entry in
                    let call = entry % calls
                    operands[call].a.withUnsafeBufferPointer { a in
                        operands[call].b.withUnsafeBufferPointer { b in
                            KernelLibrary.gemm(worker: worker, transposeA: false, transposeB: true, m: m, n: n, k: k,
                                               alpha: 0.25, a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: k,
                                               c: results + call * m * n, ldc: n)
                        }
                    }
                }
                Threading.setThreads(Threading.defaultThreads)
                for call in 0..<calls {
                    XCTAssertEqual(Array(UnsafeBufferPointer(start: results + call * m * n, count: m * n)), alone[call],
                                   "\(selection) \(precision == LOOM_PRECISION_BF16 ? "bf16" : "fp32") call \(call)")
                }
            }
        }
    }

    func testSelectionRules() {
        let zen3 = CPUFeatures(avx2FMA: true, avx512: false, avx512BF16: false, amxBF16: false)
        let zen4 = CPUFeatures(avx2FMA: true, avx512: true, avx512BF16: true, amxBF16: false)
        let skylake = CPUFeatures(avx2FMA: true, avx512: true, avx512BF16: false, amxBF16: false)
        let sapphire = CPUFeatures(avx2FMA: true, avx512: true, avx512BF16: true, amxBF16: true)
        XCTAssertEqual(KernelSelection.choose(features: zen3, cap: nil), KernelSelection(isa: .avx2, f32: .own, bf16: .emulated))
        XCTAssertEqual(KernelSelection.choose(features: zen4, cap: nil), KernelSelection(isa: .avx512, f32: .onednn, bf16: .onednn))
        XCTAssertEqual(KernelSelection.choose(features: skylake, cap: nil), KernelSelection(isa: .avx512, f32: .onednn, bf16: .emulated))
        XCTAssertEqual(KernelSelection.choose(features: sapphire, cap: nil), KernelSelection(isa: .amx, f32: .onednn, bf16: .onednn))
        XCTAssertEqual(KernelSelection.choose(features: sapphire, cap: .avx2), KernelSelection(isa: .avx2, f32: .own, bf16: .emulated))
        XCTAssertEqual(KernelSelection.choose(features: sapphire, cap: .avx512).isa, .avx512)
        let capped = KernelSelection.choose(features: zen3, cap: .amx)
        XCTAssertEqual(capped.isa, .avx2)
        XCTAssertNotNil(capped.note)
        XCTAssertEqual(KernelSelection.choose(features: zen4, cap: nil, f32Override: .own).f32, .own)
        XCTAssertNil(ISALevel(name: "sse"))
        XCTAssertEqual(ISALevel(name: "AVX512"), .avx512)
    }

    /// Detection agrees with the kernel's view of the CPU (/proc/cpuinfo flags).
    func testDetectionMatchesProcCpuinfo() throws {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            throw XCTSkip("no /proc/cpuinfo")
        }
        let flags = Set(line.split(separator: " ").map(String.init))
        let detected = CPUFeatures.detected
        XCTAssertEqual(detected.avx2FMA, flags.contains("avx2") && flags.contains("fma"))
        XCTAssertEqual(detected.avx512, ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(flags.contains))
        XCTAssertEqual(detected.avx512BF16, detected.avx512 && flags.contains("avx512_bf16"))
        XCTAssertEqual(detected.amxBF16, detected.avx512BF16 && flags.contains("amx_bf16") && flags.contains("amx_tile"))
    }
}
