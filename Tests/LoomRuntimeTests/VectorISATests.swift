import CLoomKernels
import LoomTestSupport
import XCTest

/// The elementwise, row, optimizer and bf16-conversion kernels are compiled twice, for AVX2 and for
/// AVX-512 (`loom_set_vector_isa`). Both clones run the same scalar program, so every output must
/// agree bit for bit (any NaN with any NaN): checked here on values that reach every branch (NaN, ±inf, ±0, subnormals,
/// the clamps of exp, both sides of tanh's small-argument polynomial) and on lengths with vector
/// tails and several elementwise blocks.
final class VectorISATests: XCTestCase {
    private var savedISA: Int32 = 0

    override func setUpWithError() throws {
        guard loom_detect_cpu().avx512f != 0 else {
            throw XCTSkip("this CPU has no AVX-512: only the AVX2 clones can run here")
        }
        savedISA = loom_get_vector_isa()
    }

    override func tearDown() {
        _ = loom_set_vector_isa(savedISA)
    }

    /// Random values with the special ones mixed in every 7th place.
    private func values(_ count: Int, seed: UInt64, scale: Double = 3) -> [Float] {
        let specials: [Float] = [0, -0.0, 1e-40, -1e-40, .infinity, -.infinity, .nan, 88.7, 88.9, -104, -110,
                                 0.39, 0.41, -0.4, 1e30, -1e30, 1, -1, 0.5]
        var rng = SplitMix64(state: seed)
        return (0..<count).map { i in
            i % 7 == 3 ? specials[(i / 7) % specials.count] : Float(rng.normal() * scale)
        }
    }

    /// Runs `kernel` once per clone on a fresh output of `count` floats (pre-filled with `initial`
    /// when given) and asserts the two outputs are the same bits.
    private func assertClonesAgree(_ name: String, count: Int, initial: [Float]? = nil,
                                   _ kernel: (UnsafeMutablePointer<Float>) -> Void,
                                   file: StaticString = #filePath, line: UInt = #line) {
        var outputs: [[UInt32]] = []
        for isa: Int32 in [0, 1] {
            XCTAssertEqual(loom_set_vector_isa(isa), isa, file: file, line: line)
            var y = initial ?? [Float](repeating: 0, count: count)
            y.withUnsafeMutableBufferPointer { kernel($0.baseAddress!) }
            outputs.append(y.map(\.bitPattern))
        }
        // A NaN's sign and payload depend on which NaN operand an instruction keeps, which the
        // compiler may swap in a commutative add; any NaN counts as the same value.
        let same = { (a: UInt32, b: UInt32) in a == b || (Float(bitPattern: a).isNaN && Float(bitPattern: b).isNaN) }
        if let index = outputs[0].indices.first(where: { !same(outputs[0][$0], outputs[1][$0]) }) {
            XCTFail("\(name): the AVX2 clone gives \(Float(bitPattern: outputs[0][index])), the AVX-512 clone "
                    + "\(Float(bitPattern: outputs[1][index])) at element \(index)", file: file, line: line)
        }
    }

    func testUnaryAndAffine() {
        let n = 2 * 16384 + 37  // two elementwise blocks and a tail
        let x = values(n, seed: 1)
        for op in 0...15 {
            assertClonesAgree("unary op \(op)", count: n) { loom_unary(Int32(op), x, $0, Int64(n)) }
        }
        assertClonesAgree("affine", count: n) { loom_affine(x, $0, Int64(n), 1.7, -0.3) }
    }

    func testBinaryWithBroadcast() {
        let shape: [Int64] = [37, 129]
        let a = values(37 * 129, seed: 2), b = values(129, seed: 3)
        for op in 0...5 {
            assertClonesAgree("binary op \(op)", count: a.count) {
                loom_binary(Int32(op), 2, shape, a, [129, 1], b, [0, 1], $0)
            }
        }
    }

    func testRowKernels() {
        let (rows, cols) = (37, 301)
        let x = values(rows * cols, seed: 4).map { $0.isNaN || $0.isInfinite ? 0.25 : $0 }
        let g = values(rows * cols, seed: 5, scale: 1).map { $0.isNaN || $0.isInfinite ? -0.5 : $0 }
        let (r, c) = (Int64(rows), Int64(cols))
        assertClonesAgree("softmax", count: x.count) { loom_softmax_rows(x, $0, r, c) }
        assertClonesAgree("layernorm", count: x.count) { loom_layernorm_rows(x, $0, r, c, 1e-6) }
        assertClonesAgree("rmsnorm", count: x.count) { loom_rmsnorm_rows(x, $0, r, c, 1e-6) }
        for rms: Int32 in [0, 1] {
            assertClonesAgree("norm backward rms=\(rms)", count: x.count) {
                loom_norm_backward_rows(x, g, $0, r, c, 1e-6, rms)
            }
        }
        var p = [Float](repeating: 0, count: x.count)
        loom_softmax_rows(x, &p, r, c)
        assertClonesAgree("softmax backward", count: g.count, initial: g) { loom_softmax_backward_rows(p, $0, r, c, 0.125) }
        let (batch, tokens) = (rows, 1)
        let shift = values(batch * cols, seed: 6, scale: 0.5), scale = values(batch * cols, seed: 7, scale: 0.5)
        let weight = values(cols, seed: 8, scale: 1)
        for rms: Int32 in [0, 1] {
            assertClonesAgree("norm modulate rms=\(rms)", count: x.count) {
                loom_norm_modulate(x, rms == 1 ? weight : nil, shift, scale, $0, Int64(batch), Int64(tokens), c, 1e-6, rms)
            }
        }
    }

    func testReductions() {
        let shape: [Int64] = [33, 517]
        let x = values(33 * 517, seed: 9)
        for op in 0...2 {
            assertClonesAgree("reduce op \(op) over rows", count: 33) { loom_reduce(Int32(op), 2, shape, [0, 1], x, $0) }
            assertClonesAgree("reduce op \(op) over columns", count: 517) { loom_reduce(Int32(op), 2, shape, [1, 0], x, $0) }
        }
    }

    func testFusedElementwiseAndEpilogue() {
        let shape: [Int64] = [19, 1031]
        let a = values(19 * 1031, seed: 10), b = values(19 * 1031, seed: 11), bias = values(1031, seed: 12)
        // y = gelu(a·b + bias) · 0.5 − 1, bias broadcast over rows.
        let program = [
            loom_ew_instruction(kind: Int32(LOOM_EW_BINARY.rawValue), op: Int32(LOOM_B_MUL.rawValue), a: 0, b: 1, f0: 0, f1: 0),
            loom_ew_instruction(kind: Int32(LOOM_EW_BINARY.rawValue), op: Int32(LOOM_B_ADD.rawValue), a: 3, b: 2, f0: 0, f1: 0),
            loom_ew_instruction(kind: Int32(LOOM_EW_UNARY.rawValue), op: Int32(LOOM_U_GELU_TANH.rawValue), a: 4, b: 0, f0: 0, f1: 0),
            loom_ew_instruction(kind: Int32(LOOM_EW_AFFINE.rawValue), op: 0, a: 5, b: 0, f0: 0.5, f1: -1),
        ]
        let strides: [Int64] = [1031, 1, 1031, 1, 0, 1]
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                bias.withUnsafeBufferPointer { pbias in
                    let inputs: [UnsafePointer<Float>?] = [pa.baseAddress, pb.baseAddress, pbias.baseAddress]
                    assertClonesAgree("elementwise program", count: a.count) {
                        loom_elementwise(2, shape, 3, inputs, strides, Int32(program.count), program, $0)
                    }
                }
            }
        }
        assertClonesAgree("bias + GELU tile", count: a.count, initial: a) {
            loom_bias_activation_tile($0, 19, 1031, 1031, bias, Int32(LOOM_U_GELU_TANH.rawValue))
        }
    }

    func testBF16Conversions() {
        let n = 4099
        let x = values(n, seed: 13, scale: 1e3)
        assertClonesAgree("round to bf16", count: n) { loom_round_to_bf16(x, $0, Int64(n)) }
        var bits: [[UInt16]] = []
        for isa: Int32 in [0, 1] {
            _ = loom_set_vector_isa(isa)
            var y = [UInt16](repeating: 0, count: n)
            loom_convert_to_bf16(x, &y, Int64(n))
            bits.append(y)
        }
        XCTAssertEqual(bits[0], bits[1], "bf16 bit patterns differ between the clones")
    }

    func testOptimizer() {
        let n = 3 * 16384 + 5
        let g = values(n, seed: 14, scale: 0.1).map { $0.isFinite ? $0 : 0.01 }
        let p = values(n, seed: 15, scale: 1).map { $0.isFinite ? $0 : 0.2 }
        let m = values(n, seed: 16, scale: 0.01).map { $0.isFinite ? $0 : 0 }
        let v = values(n, seed: 17, scale: 0.01).map { $0.isFinite ? abs($0) : 1e-4 }
        let starts: [Int64] = [0, 1000, Int64(n)]
        var sums: [UInt32] = []
        for isa: Int32 in [0, 1] {
            _ = loom_set_vector_isa(isa)
            g.withUnsafeBufferPointer { pg in
                let segments: [UnsafePointer<Float>?] = [pg.baseAddress, pg.baseAddress! + 1000]
                sums.append(loom_sum_squares(segments, starts, 2).bitPattern)
            }
        }
        XCTAssertEqual(sums[0], sums[1], "sum of squares differs between the clones")
        var k = loom_adamw_scalars()
        (k.beta1, k.beta2, k.eps, k.step, k.sqrt_bias2) = (0.9, 0.999, 1e-8, 1e-3, 0.03)
        (k.coef, k.decay_factor, k.ema_decay, k.ema_keep) = (0.7, 0.9999, 0.999, 0.001)
        (k.clip, k.decay, k.ema) = (1, 1, 1)
        let state = g + p + m + v + p  // [g | p | m | v | e], n each
        assertClonesAgree("adamw", count: 4 * n) { out in
            state.withUnsafeBufferPointer { buffer in
                let base = buffer.baseAddress!
                let segment = { (part: Int) -> [UnsafePointer<Float>?] in [base + part * n, base + part * n + 1000] }
                loom_adamw(segment(0), segment(1), segment(2), segment(3), segment(4), starts, 2, out, k)
            }
        }
    }
}
