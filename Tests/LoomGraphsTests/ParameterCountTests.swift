import LoomGraphs
import LoomIR
import XCTest

/// The parameter totals of the official configurations (PyTorch's `parameters()`, pos_embed included).
final class ParameterCountTests: XCTestCase {
    func count(_ backbone: Backbone, _ preset: ModelPreset, patch: Int, ig: Int? = nil) throws -> Int {
        let model = try DiffusionTransformer(.preset(backbone, preset, patch: patch, igLayer: ig))
        return try model.forwardGraph(batch: 1).pytorchParameterCount
    }

    func testOfficialTotals() throws {
        XCTAssertEqual(try count(.dit, .XL, patch: 2), 675_129_632)
        XCTAssertEqual(try count(.sit, .XL, patch: 2, ig: 8), 677_786_144)
        XCTAssertEqual(try count(.lightningdit, .XL, patch: 1), 675_256_736)
    }
}
