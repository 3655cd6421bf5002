import LoomCompiler
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// The golden suite on every GEMM path this machine can run: Loom's own AVX2 GEMM, oneDNN's fp32
/// kernels, and bf16 (oneDNN's bf16 kernels where the CPU has bf16 instructions, else rounded
/// operands on the fp32 kernel). fp32 within 1e-4 of the fp32 goldens; bf16 within
/// `GoldenCheck.bf16Tolerance` of the reference executor on bf16-rounded operands; every path gives
/// the same bits at 1 and 2 threads.
final class KernelPathGoldenTests: XCTestCase {
    static let names = ["dit_tiny", "sit_ig_tiny", "lightning_ig_tiny"]

    /// Every selection the CPU can run (capped variants of the one it would choose).
    static var selections: [KernelSelection] {
        var out = [KernelSelection(isa: .avx2, f32: .own, bf16: .emulated),
                   KernelSelection(isa: .avx2, f32: .onednn, bf16: .emulated)]
        let current = KernelSelection.current
        if current.isa >= .avx512 { out.append(KernelSelection(isa: current.isa, f32: .onednn, bf16: current.bf16)) }
        return out
    }

    func path(_ name: String) -> String {
        CompiledPlanTests.fixtures.appendingPathComponent(name + ".safetensors").path
    }

    func testFP32GoldensOnEveryPath() throws {
        for selection in Self.selections {
            for name in Self.names {
                let check = try GoldenCheck(path: path(name), threads: 2, compiled: true, kernels: selection)
                XCTAssertTrue(check.passed, "\(selection): \(name): \(check.rows.filter { !$0.passed }.map { "\($0.name) \($0.error)" })")
                XCTAssertTrue(check.rows.contains { $0.name.hasPrefix("grad.") }, name)
            }
        }
    }

    func testBF16AgainstTheReferenceOfTheSameRoundingOnEveryPath() throws {
        for selection in Self.selections {
            for name in Self.names {
                let check = try GoldenCheck(path: path(name), threads: 2, compiled: true, precision: .bf16, kernels: selection)
                XCTAssertTrue(check.passed, "\(selection): \(name): \(check.rows.filter { !$0.passed }.map { "\($0.name) \($0.error)" })")
                // bf16 really ran: the result is measurably away from the fp32 goldens, and not far.
                let drift = check.fp32Drift.map(\.error).max() ?? 0
                XCTAssertGreaterThan(drift, 1e-4, "\(selection): \(name) looks like fp32")
                XCTAssertLessThan(drift, 0.1, "\(selection): \(name)")
            }
        }
    }

    func testEveryPathGivesTheSameBitsAtOneAndTwoThreads() throws {
        for selection in Self.selections {
            for precision in PrecisionPolicy.allCases {
                let one = try GoldenCheck(path: path("sit_ig_tiny"), threads: 1, compiled: true, precision: precision, kernels: selection)
                let two = try GoldenCheck(path: path("sit_ig_tiny"), threads: 2, compiled: true, precision: precision, kernels: selection)
                for (name, a) in one.computed {
                    XCTAssertEqual(a.floats.map(\.bitPattern), two.computed[name]?.floats.map(\.bitPattern),
                                   "\(selection) \(precision) \(name): 1 vs 2 threads")
                }
            }
        }
    }
}
