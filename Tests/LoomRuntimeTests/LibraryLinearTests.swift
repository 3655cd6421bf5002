import CLoomKernels
import LoomIR
@testable import LoomRuntime
import LoomTestSupport
import XCTest

/// A forward plan's whole-layer oneDNN linear (weight reordered once): the result of Loom's own
/// path in each precision, and the same bits at 1 and 2 threads.
final class LibraryLinearTests: XCTestCase {
    var rng = SplitMix64(state: 0x11B)

    override func tearDown() {
        loom_gemm_set_precision(LOOM_PRECISION_F32)
        KernelSelection.current.apply()
        Threading.setThreads(Threading.defaultThreads)
    }

    func testMatchesTheSlabPathAndIsIndependentOfTheTeamSize() throws {
        let (rows, n, k) = (320, 1536, 384)
        let x = HostTensor(shape: [rows, k], floats: (0..<(rows * k)).map { _ in rng.float(-1, 1) })
        let w = HostTensor(shape: [n, k], floats: (0..<(n * k)).map { _ in rng.float(-0.1, 0.1) })
        let b = HostTensor(shape: [n], floats: (0..<n).map { _ in rng.float(-1, 1) })
        let (xb, wb, bb) = (RawBuffer(x), RawBuffer(w), RawBuffer(b))
        for bf16 in [false, true] {
            if bf16 && KernelSelection.current.bf16 != .onednn { continue }
            KernelSelection(isa: .avx512, f32: .onednn, bf16: .onednn).apply()
            loom_gemm_set_precision(bf16 ? LOOM_PRECISION_BF16 : LOOM_PRECISION_F32)
            // Loom's slab path (one GEMM split over the team) as the reference.
            let reference = RawBuffer(TensorType(.f32, [rows, n]))
            Threading.setThreads(2)
            KernelLibrary.linear(xb.ref, wb.ref, bb.ref, reference.ref, activation: .geluTanh)
            var results: [[Float]] = []
            for threads in [1, 2] {
                Threading.setThreads(threads)
                guard let layer = LibraryLinear(rows: rows, n: n, k: k, bf16: bf16, threads: threads) else {
                    throw XCTSkip("oneDNN has no fast kernel here")
                }
                let storage = UnsafeMutableRawPointer.allocate(byteCount: layer.weightBytes, alignment: 64)
                defer { storage.deallocate() }
                layer.pack(wb.ref.floats, into: storage)
                layer.weights = UnsafeRawPointer(storage)
                let y = RawBuffer(TensorType(.f32, [rows, n]))
                XCTAssertTrue(layer.run(xb.ref, bb.ref, y.ref, activation: .geluTanh))
                results.append(y.ref.hostTensor().floats)
            }
            XCTAssertEqual(results[0], results[1], "bf16 \(bf16): 1 vs 2 threads")
            let expected = reference.ref.hostTensor().floats
            let scale = expected.map { abs($0) }.max()!
            let error = zip(results[0], expected).map { abs($0 - $1) }.max()! / scale
            XCTAssertLessThan(error, 1e-5, "bf16 \(bf16)")
        }
    }
}
