import CLoomKernels
import Foundation
import LoomTestSupport
import XCTest

/// Unary, affine, fill and broadcasting binary kernels against Double references.
final class ElementwiseKernelTests: KernelTestCase {

    // MARK: - Unary / affine / fill

    func testUnaryOpsMatchReference() {
        XCTAssertEqual(KernelTestCase.unaryOps.count, 16)
        for (op, name, f) in KernelTestCase.unaryOps {
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

    /// One operand: storage plus element strides over the output shape.
    struct Operand {
        var data: [Float]
        var strides: [Int]
    }

    /// Contiguous storage of `opShape` (1 on broadcast axes) read through the output `shape`.
    func operand(_ opShape: [Int], nonZero: Bool = false) -> Operand {
        let n = opShape.reduce(1, *)
        var strides = KernelTestCase.contiguousStrides(opShape)
        for d in 0..<opShape.count where opShape[d] == 1 { strides[d] = 0 }
        return Operand(data: nonZero ? randomNonZero(n) : random(n), strides: strides)
    }

    func checkBinary(_ shape: [Int], _ a: Operand, _ b: Operand, _ label: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        let n = shape.reduce(1, *)
        for (op, name, f) in KernelTestCase.binaryOps {
            var y = [Float](repeating: .nan, count: n)
            loom_binary(Int32(op.rawValue), Int32(shape.count), i64(shape), a.data, i64(a.strides),
                        b.data, i64(b.strides), &y)
            var ref = [Double]()
            KernelTestCase.forEachIndex(shape) { idx in
                ref.append(f(Double(a.data[KernelTestCase.dot(idx, a.strides)]),
                             Double(b.data[KernelTestCase.dot(idx, b.strides)])))
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
}
