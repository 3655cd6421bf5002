import Foundation
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTestSupport
import LoomTraining
import XCTest

/// Deterministic samplers on Gaussian data with the exact denoiser: the error against the exact
/// flow map shrinks at the solver's order as the step count doubles.
final class SamplerConvergenceTests: XCTestCase {
    static let data = AnalyticGaussian(
        shape: [1, 4, 4],
        mu: (0..<16).map { -1.5 + 0.2 * Double($0) },
        s: (0..<16).map { [0.3, 0.6, 1.0, 1.5][$0 % 4] })
    let batch = 8
    let labels = [Int64](repeating: 0, count: 8)

    /// Max |x − exact| after sampling with each step count, on the same initial noise.
    func errors(_ kind: SamplerKind, _ objective: Objective, steps: [Int], shift: Double = 1) throws -> [Double] {
        let data = Self.data
        let runner = try ReferenceStepRunner(batch: batch, sampleShape: data.shape, numClasses: 10,
                                             guidance: .unguided, network: data.network(objective),
                                             parameters: data.parameters(), threads: 1)
        let noise = SamplerLoop.initialNoise(seed: 3, count: batch, sampleShape: data.shape)
        let exact = data.exactFlowMap(noise.floats, ddpmFrom: objective == .ddpmEps ? 999 : nil)
        return try steps.map { n in
            let loop = try SamplerLoop(settings: SamplerSettings(kind: kind, steps: n, objective: objective, shift: shift),
                                       guidance: .unguided, sampleShape: data.shape)
            let x = try loop.sample(runner: runner, labels: labels, seed: 3, initialNoise: noise)
            return zip(x.floats, exact).map { Swift.abs(Double($0) - $1) }.max()!
        }
    }

    /// log2 of successive error ratios.
    func orders(_ e: [Double]) -> [Double] { zip(e, e.dropFirst()).map { log2($0 / $1) } }

    func check(_ name: String, _ e: [Double], order: ClosedRange<Double>) {
        let rates = orders(e)
        print("\(name): errors \(e.map { String(format: "%.3e", $0) }) orders \(rates.map { String(format: "%.2f", $0) })")
        for rate in rates { XCTAssert(order.contains(rate), "\(name): measured order \(rate) outside \(order)") }
    }

    func testEulerIsFirstOrder() throws {
        check("euler repa", try errors(.euler, .flowRepa, steps: [8, 16, 32, 64]), order: 0.8...1.3)
        check("euler sit", try errors(.euler, .flowSit, steps: [8, 16, 32, 64]), order: 0.8...1.3)
    }

    func testHeunIsSecondOrder() throws {
        check("heun repa", try errors(.heun, .flowRepa, steps: [8, 16, 32, 64]), order: 1.7...2.4)
        check("heun sit shift 0.3", try errors(.heun, .flowSit, steps: [4, 8, 16, 32], shift: 0.3), order: 1.7...2.4)
    }

    func testDDIMConverges() throws {
        let e = try errors(.ddim, .ddpmEps, steps: [10, 20, 40, 80])
        check("ddim η=0", e, order: 0.8...1.3)
        XCTAssertLessThan(e.last!, 0.1)
    }
}
