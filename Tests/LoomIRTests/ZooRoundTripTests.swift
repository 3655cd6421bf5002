import LoomGraphs
import LoomIR
import XCTest

/// print → parse → print is the identity for every zoo model (each backbone and preset, with and
/// without the IG head, at several patch sizes).
final class ZooRoundTripTests: XCTestCase {
    func roundTrip(_ config: ModelConfig, file: StaticString = #filePath, line: UInt = #line) throws {
        let graph = try DiffusionTransformer(config).forwardGraph(batch: 2)
        let text = IRPrinter.print(graph)
        let parsed = try IRParser.parse(text, source: config.displayName)
        XCTAssertEqual(IRPrinter.print(parsed), text, config.displayName, file: file, line: line)
        XCTAssertEqual(parsed, graph, config.displayName, file: file, line: line)
    }

    func testEveryBackboneAndPreset() throws {
        for backbone in Backbone.allCases {
            for preset in ModelPreset.allCases {
                try roundTrip(.preset(backbone, preset, igLayer: preset.depth / 3))
            }
        }
    }

    func testPatchSizesAndNoHead() throws {
        for patch in [1, 2, 4, 8] {
            try roundTrip(.preset(.dit, .S, patch: patch))
            try roundTrip(.preset(.sit, .S, patch: patch, igLayer: 4))
        }
        try roundTrip(.preset(.lightningdit, .S, patch: 2, igLayer: 1))
    }
}
