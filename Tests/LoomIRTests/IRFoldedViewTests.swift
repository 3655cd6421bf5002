import LoomTestSupport
import XCTest
@testable import LoomIR

/// The folded view prints one of each run of identical repeated blocks.
final class IRFoldedViewTests: XCTestCase {
    private func blockGraph(blocks: Int, geluFrom: Int = .max) throws -> Graph {
        let b = GraphBuilder(name: "stack")
        var x = b.input("x", TensorType(.f32, [4, 8]))
        let c = b.input("c", TensorType(.f32, [4, 8]))
        for i in 0..<blocks {
            b.annotate(scope: "blocks.\(i)", block: "blocks.\(i)", repeated: true)
            x = b.scoped("blocks.\(i)") {
                let w = b.scoped("fc") { b.parameter("weight", [8, 8], initializer: .xavierUniform(fanIn: 8, fanOut: 8)) }
                let h = b.scoped("fc") { x.matmul(w) }
                let act = i >= geluFrom ? h.geluTanh() : h.silu()
                return act + c + x
            }
        }
        b.output("y", x.rmsNorm(eps: 1e-6))
        return try b.build()
    }

    func testFoldedThreeIdenticalBlocks() throws {
        let graph = try blockGraph(blocks: 3)
        let full = IRPrinter.print(graph)
        let folded = IRPrinter.printFolded(graph)
        XCTAssertTrue(folded.contains("  // blocks.1 … blocks.2: ×2 identical to blocks.0 (5 nodes each)\n"), folded)
        XCTAssertTrue(folded.contains("param \"blocks.0.fc.weight\""), folded)
        XCTAssertFalse(folded.contains("blocks.1.fc"), folded)
        XCTAssertTrue(folded.contains("rms_norm(%16)"), folded)
        XCTAssertTrue(folded.hasPrefix("graph stack {\n"))
        XCTAssertTrue(folded.hasSuffix("  return y = %17\n}\n"))
        let fullLines = full.split(separator: "\n").count
        let foldedLines = folded.split(separator: "\n").count
        XCTAssertEqual(foldedLines, fullLines - 10 + 1)
    }

    func testFoldedFourBlocksAndABreak() throws {
        let four = IRPrinter.printFolded(try blockGraph(blocks: 4))
        XCTAssertTrue(four.contains("// blocks.1 … blocks.3: ×3 identical to blocks.0 (5 nodes each)"), four)

        // blocks.2 and blocks.3 use another activation: blocks.1 folds into blocks.0, blocks.3 into blocks.2.
        let broken = IRPrinter.printFolded(try blockGraph(blocks: 4, geluFrom: 2))
        XCTAssertTrue(broken.contains("// blocks.1: ×1 identical to blocks.0 (5 nodes each)"), broken)
        XCTAssertTrue(broken.contains("gelu_tanh"), broken)
        XCTAssertTrue(broken.contains("// blocks.3: ×1 identical to blocks.2 (5 nodes each)"), broken)

        // Nothing to fold: the folded view is the plain text.
        let single = try blockGraph(blocks: 1)
        XCTAssertEqual(IRPrinter.printFolded(single), IRPrinter.print(single))
    }
}
