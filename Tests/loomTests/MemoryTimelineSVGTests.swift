import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomSampling
import LoomTestSupport
import LoomTraining
import XCTest
@testable import loom

/// The SVG plot of `loom profile --timeline-svg`.
final class MemoryTimelineSVGTests: XCTestCase {
    func testPlotIsWellFormed() {
        let points = (0..<40).map { (launch: $0, bytes: 1_000_000 * (($0 * 7) % 23) + 512) }
        let labels = (0..<40).map { $0 < 10 ? "embedders" : $0 < 30 ? "blocks.0" : "final_layer" }
        let timeline = MemoryTimeline(points: points, labels: labels, title: "SiT <tiny> & co")
        let svg = timeline.svg(width: 800, height: 300)
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertTrue(svg.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("</svg>"))
        XCTAssertTrue(svg.contains("<polyline") || svg.contains("<path"))
        XCTAssertTrue(svg.contains("SiT &lt;tiny&gt; &amp; co"))
        XCTAssertTrue(svg.contains("blocks.0"))
        XCTAssertTrue(svg.contains("MiB"))
        XCTAssertFalse(svg.contains("nan") || svg.contains("inf"))
        // Tags balance (a cheap well-formedness check).
        XCTAssertEqual(svg.components(separatedBy: "<text").count, svg.components(separatedBy: "</text>").count)
        XCTAssertEqual(svg.components(separatedBy: "<title>").count, svg.components(separatedBy: "</title>").count)

        let unlabelled = MemoryTimeline(points: [(launch: 0, bytes: 10)], title: "one")
        XCTAssertTrue(unlabelled.svg().hasPrefix("<svg"))
        let empty = MemoryTimeline(points: [], title: "empty")
        XCTAssertTrue(empty.svg().contains("</svg>"))
    }
}
