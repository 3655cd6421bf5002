import CLoomKernels
import LoomIR
@testable import LoomRuntime
import LoomTestSupport
import XCTest

/// `conv2d` on both implementations (oneDNN's primitive with a reordered weight, Loom's own
/// im2col + GEMM) against a direct loop in Double, over the geometries the VAE uses: 3×3 same
/// padding, 1×1, and 3×3 stride 2 with the (0, 0, 1, 1) padding of a downsampling layer.
final class ConvolutionKernelTests: XCTestCase {
    var rng = SplitMix64(state: 0xC0DE)

    struct Geometry {
        var n, c, h, w, o, k, stride: Int
        var padding: [Int]
        var outH: Int { (h + padding[0] + padding[2] - k) / stride + 1 }
        var outW: Int { (w + padding[1] + padding[3] - k) / stride + 1 }
    }

    static let geometries = [
        Geometry(n: 2, c: 5, h: 9, w: 7, o: 6, k: 3, stride: 1, padding: [1, 1, 1, 1]),
        Geometry(n: 1, c: 8, h: 6, w: 6, o: 3, k: 1, stride: 1, padding: [0, 0, 0, 0]),
        Geometry(n: 2, c: 4, h: 8, w: 10, o: 5, k: 3, stride: 2, padding: [0, 0, 1, 1]),
        // More output positions than one column block of the own path (256), odd channel counts.
        Geometry(n: 1, c: 3, h: 23, w: 19, o: 7, k: 3, stride: 1, padding: [1, 1, 1, 1]),
    ]

    func random(_ count: Int) -> [Float] { (0..<count).map { _ in rng.float(-1, 1) } }

    /// The direct definition: y[n,o,i,j] = b[o] + Σ x[n,c,i·s−top+di, j·s−left+dj]·w[o,c,di,dj].
    func direct(_ g: Geometry, _ x: [Float], _ w: [Float], _ b: [Float]) -> [Double] {
        var y = [Double](repeating: 0, count: g.n * g.o * g.outH * g.outW)
        for n in 0..<g.n { for o in 0..<g.o { for i in 0..<g.outH { for j in 0..<g.outW {
            var sum = Double(b[o])
            for c in 0..<g.c { for di in 0..<g.k { for dj in 0..<g.k {
                let ih = i * g.stride - g.padding[0] + di, iw = j * g.stride - g.padding[1] + dj
                guard ih >= 0, ih < g.h, iw >= 0, iw < g.w else { continue }
                sum += Double(x[((n * g.c + c) * g.h + ih) * g.w + iw]) * Double(w[((o * g.c + c) * g.k + di) * g.k + dj])
            } } }
            y[((n * g.o + o) * g.outH + i) * g.outW + j] = sum
        } } } }
        return y
    }

    func run(_ g: Geometry, provider: ConvolutionProvider, threads: Int) throws -> (value: [Float], implementation: String,
                                                                                           expected: [Double]) {
        let x = HostTensor(shape: [g.n, g.c, g.h, g.w], floats: random(g.n * g.c * g.h * g.w))
        let w = HostTensor(shape: [g.o, g.c, g.k, g.k], floats: random(g.o * g.c * g.k * g.k))
        let b = HostTensor(shape: [g.o], floats: random(g.o))
        let y = HostTensor(zeros: TensorType(.f32, [g.n, g.o, g.outH, g.outW]))
        let buffers = [x, w, b, y].map { RawBuffer($0) }
        let refs = buffers.map(\.ref)
        Threading.setThreads(threads)
        defer { Threading.setThreads(1) }
        let launch = ConvolutionLaunch(refs[0], refs[1], refs[3], stride: g.stride, padding: g.padding, provider: provider,
                                       threads: threads)
        try launch.run(refs[0], refs[1], refs[2], refs[3], version: 1)
        return (refs[3].hostTensor().floats, launch.implementation, direct(g, x.floats, w.floats, b.floats))
    }

    func assertClose(_ got: [Float], _ expected: [Double], _ what: String) {
        XCTAssertEqual(got.count, expected.count, what)
        let scale = max(expected.map(Swift.abs).max() ?? 0, 1e-30)
        let error = zip(got, expected).map { Swift.abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(error / scale, 1e-5, "\(what): max|a − b| / max|ref| = \(error / scale)")
    }

    func testOwnPathMatchesTheDirectDefinition() throws {
        for (index, g) in Self.geometries.enumerated() {
            for threads in [1, 2] {
                let (value, implementation, expected) = try run(g, provider: .own, threads: threads)
                XCTAssertEqual(implementation, "own im2col+gemm")
                assertClose(value, expected, "geometry \(index), own, \(threads) thread(s)")
            }
        }
    }

    func testLibraryPathsMatchTheDirectDefinition() throws {
        for provider in [ConvolutionProvider.onednn, .winograd] {
            for (index, g) in Self.geometries.enumerated() {
                let (value, implementation, expected) = try run(g, provider: provider, threads: 2)
                XCTAssertTrue(implementation.hasPrefix("onednn "), "geometry \(index): \(implementation)")
                if provider == .onednn { XCTAssertFalse(implementation.contains("wino"), implementation) }
                assertClose(value, expected, "geometry \(index), \(provider): \(implementation)")
            }
        }
    }

    /// Where the CPU has AVX-512, 3×3 stride-1 convolutions run oneDNN's Winograd kernel (AVX2-only
    /// CPUs fall back to the direct kernel, which the test above checks).
    func testWinogradIsChosenWhereTheCPUHasIt() throws {
        try XCTSkipUnless(KernelSelection.current.isa >= .avx512, "Winograd needs AVX-512 (isa \(KernelSelection.current.isa))")
        let (_, implementation, _) = try run(Self.geometries[0], provider: .winograd, threads: 2)
        XCTAssertTrue(implementation.contains("wino"), implementation)
        let (_, strided, _) = try run(Self.geometries[2], provider: .winograd, threads: 2)
        XCTAssertFalse(strided.contains("wino"), "stride 2 runs the direct kernel: \(strided)")
    }

    /// The reference executor's path (`KernelLibrary.launch`) runs the op through the IR.
    func testOpThroughTheReferenceExecutor() throws {
        let g = Self.geometries[2]
        let b = GraphBuilder(name: "conv")
        let x = b.input("x", TensorType(.f32, [g.n, g.c, g.h, g.w]))
        let w = b.parameter("w", [g.o, g.c, g.k, g.k], initializer: .normal(std: 1))
        let bias = b.parameter("b", [g.o], initializer: .normal(std: 1))
        b.output("y", x.conv2d(w, bias, stride: g.stride, padding: g.padding))
        let graph = try b.build()
        XCTAssertEqual(graph.outputs.first.map { graph.nodes[$0.node].type.shape }, [g.n, g.o, g.outH, g.outW])
        let xs = random(g.n * g.c * g.h * g.w), ws = random(g.o * g.c * g.k * g.k), bs = random(g.o)
        let out = try ReferenceExecutor(threads: 2).run(
            graph, inputs: ["x": HostTensor(shape: [g.n, g.c, g.h, g.w], floats: xs)],
            parameters: ["w": HostTensor(shape: [g.o, g.c, g.k, g.k], floats: ws), "b": HostTensor(shape: [g.o], floats: bs)])
        assertClose(out["y"]!.floats, direct(g, xs, ws, bs), "reference executor")
    }

    func testShapeErrorsNameTheOperands() {
        let b = GraphBuilder(name: "bad")
        let x = b.input("x", TensorType(.f32, [1, 3, 4, 4]))
        let w = b.parameter("w", [2, 4, 3, 3], initializer: .zeros)
        let bias = b.parameter("b", [2], initializer: .zeros)
        _ = x.conv2d(w, bias, padding: [1, 1, 1, 1])
        XCTAssertThrowsError(try b.build()) { error in
            XCTAssertTrue("\(error)".contains("conv2d weight must be [O, 3, kh, kw]"), "\(error)")
        }
    }
}
