import Foundation
import LoomBenchmarking
import LoomCompiler
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining
import XCTest

/// The benchmark harness on tiny models: the GEMM shapes it times as the roofline account for
/// every multiply-add of the plan, and a measured step reports consistent figures.
final class StepBenchmarkTests: XCTestCase {
    let model = ModelConfig(backbone: .sit, inputSize: 16, inChannels: 1, learnSigma: false, patch: 2,
                            hidden: 16, depth: 2, heads: 2, numClasses: 3, igLayer: 1)

    func testRooflineShapesCoverEveryMultiplyAdd() throws {
        for kind in [BenchmarkCase.Kind.train, .sampleIG, .sampleIGCFG] {
            let benchmarkCase = BenchmarkCase(name: "tiny-\(kind.rawValue)", kind: kind, model: model, batch: 2)
            let plan = try Pipeline.inference().plan(try StepBenchmark.stepGraph(benchmarkCase, model: try DiffusionTransformer(model)))
            let shapes = GemmRoofline.shapes(of: plan.graph)
            XCTAssertFalse(shapes.isEmpty, kind.rawValue)
            XCTAssertEqual(GemmRoofline.macs(shapes), CostModel.total(of: plan.graph).macs, "\(kind.rawValue): GEMM MACs")
        }
    }

    func testMeasuredStepReportsConsistentFigures() throws {
        let benchmarkCase = BenchmarkCase(name: "tiny-train", kind: .train, model: model, batch: 4)
        let bench = try StepBenchmark(benchmarkCase, threads: 1)
        let result = try bench.measure(repeats: 3, warmup: 0)
        XCTAssertEqual(result.timesMs.count, 3)
        XCTAssertEqual(result.medianMs, result.timesMs.sorted()[1])
        XCTAssertEqual(result.imagesPerS, 4 / (result.medianMs / 1000), accuracy: 1e-9 * result.imagesPerS)
        XCTAssertEqual(result.forwardGMACs * 1e9,
                       Double(CostModel.total(of: try DiffusionTransformer(model).forwardGraph(batch: 4)).macs), accuracy: 1)
        XCTAssertGreaterThan(result.sgemmGFLOPsPerS ?? 0, 0)
        XCTAssertGreaterThan(result.peakRSSMiB, result.planMiB, "the process holds at least the plan")
        let decoded = try JSONDecoder().decode(StepBenchmarkResult.self, from: Data(result.json().utf8))
        XCTAssertEqual(decoded.medianMs, result.medianMs)
        XCTAssertTrue(result.json().contains("\"median_ms\""), result.json())
    }

    func testUnknownCaseIsNamed() {
        XCTAssertThrowsError(try BenchmarkCase.named("train-xl")) { error in
            XCTAssertTrue("\(error)".contains("train-s2-b8"), "\(error)")
        }
    }
}
