import LoomCompiler
import LoomData
import LoomDiffusion

import LoomTestSupport
import LoomTraining
import LoomIR
import LoomRuntime
import XCTest

/// `fused_elementwise` operands read in place through windows: slices between a tensor and an
/// elementwise chain disappear into the kernel, which then agrees with the primitive graph on the
/// reference executor and as a compiled plan, and survives the IR text round trip.
final class ElementwiseWindowTests: XCTestCase {
    /// `a` [4, 6, 3, 3] holds two halves of two rows each; the chain combines rows 2..<4 and
    /// 0..<2 on channels 1..<4 with a [3, 3]-broadcast operand and one coefficient of `coef`.
    func halvesGraph() throws -> Graph {
        let b = GraphBuilder(name: "halves")
        let a = b.input("a", TensorType(.f32, [4, 6, 3, 3]))
        let plane = b.input("plane", TensorType(.f32, [3, 3]))
        let coef = b.input("coef", TensorType(.f32, [5]))
        let s = coef.reshape([5, 1, 1, 1]).slice(axis: 0, 3..<4)                         // [1, 1, 1, 1]
        let upper = a.slice(axis: 0, 2..<4).slice(axis: 1, 1..<4)                        // [2, 3, 3, 3]
        let lower = a.slice(axis: 0, 0..<2).slice(axis: 1, 1..<4)                        // [2, 3, 3, 3]
        b.output("y", (lower + s * (upper - lower)) * plane + lower.exp())
        return try b.build()
    }

    func feed() -> [String: HostTensor] {
        var stream = RandomStream(seed: 3, stream: 4)
        return ["a": HostTensor(shape: [4, 6, 3, 3], floats: stream.normal(216)),
                "plane": HostTensor(shape: [3, 3], floats: stream.normal(9)),
                "coef": HostTensor(shape: [5], floats: [0.1, 0.2, 0.3, 1.75, 0.5])]
    }

    func testSlicesBecomeWindowsOfOneKernel() throws {
        let graph = try halvesGraph()
        let fused = try SimplifyPass().run(try FusionPass().run(graph))
        let launches = fused.nodes.filter {
            switch $0.op {
            case .input, .parameter, .reshape: return false
            default: return true
            }
        }
        XCTAssertEqual(launches.map(\.op.mnemonic), ["fused_elementwise"], IRPrinter.print(fused))
        guard let kernel = launches.first, case .fused(.elementwise(let program)) = kernel.op else { return }
        // Both halves of `a` (shared slices included) and the coefficient are windows.
        let windows = program.windows.values.sorted { $0.offsets.lexicographicallyPrecedes($1.offsets) }
        XCTAssertEqual(windows, [OperandWindow(offsets: [0, 1, 0, 0], shape: [2, 3, 3, 3]),
                                 OperandWindow(offsets: [2, 1, 0, 0], shape: [2, 3, 3, 3]),
                                 OperandWindow.whole([5, 1, 1, 1]).sliced(axis: 0, start: 3, end: 4)])
        let inputs = feed()
        let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: [:])["y"]!
        let one = try ReferenceExecutor(threads: 1).run(fused, inputs: inputs, parameters: [:])["y"]!
        let two = try ReferenceExecutor(threads: 2).run(fused, inputs: inputs, parameters: [:])["y"]!
        XCTAssertLessThanOrEqual(GoldenCheck.relativeError(one, reference), 1e-6)
        XCTAssertEqual(one, two)
        let planned = try PlanExecutor(plan: try PlanLowering.lower(fused), threads: 2).run(inputs: inputs)["y"]!
        XCTAssertLessThanOrEqual(GoldenCheck.relativeError(planned, reference), 1e-6)
        // The windows are part of the IR text.
        let text = IRPrinter.print(fused)
        XCTAssertTrue(text.contains("windows="), text)
        XCTAssertEqual(IRPrinter.print(try IRParser.parse(text)), text)
    }

    func testBadWindowsAreRefused() throws {
        XCTAssertThrowsError(try ElementwiseProgram.parseWindows("r2:0,0/1,1", inputCount: 2))
        XCTAssertThrowsError(try ElementwiseProgram.parseWindows("r0:0,0/1", inputCount: 1))
        XCTAssertThrowsError(try OperandWindow(offsets: [3, 0], shape: [2, 2]).validate(in: [4, 2]))
        XCTAssertNoThrow(try OperandWindow(offsets: [2, 0], shape: [2, 2]).validate(in: [4, 2]))
        let text = """
            graph g {
              %0 = input "a" : f32[4,2]
              %1 = fused_elementwise(%0) program="exp(r0)" windows="r0:3,0/2,2" : f32[2,2]
              return y = %1
            }
            """
        XCTAssertThrowsError(try IRParser.parse(text)) { error in
            XCTAssertTrue("\(error)".contains("outside"), "\(error)")
        }
    }
}
