import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// Forward plans pack their linear weights once: the outputs match the reference executor, and
/// loading new parameters packs them again (no stale weights).
final class PackedWeightsTests: XCTestCase {
    func testPackedWeightsFollowNewParameters() throws {
        let b = GraphBuilder(name: "mlp")
        let x = b.input("x", TensorType(.f32, [1, 64, 48]))
        let h = b.scoped("fc1") { Linear(b, 48, 200)(x).unary(.geluTanh) }
        b.output("y", b.scoped("fc2") { Linear(b, 200, 40)(h) })
        let graph = try b.build()
        let plan = try Pipeline.inference().plan(graph)
        XCTAssertEqual(plan.graph.nodes.filter { $0.op.mnemonic == "linear" }.count, 2)
        let inputs = ["x": TestTensors.random([1, 64, 48], seed: 1)]
        for threads in [1, 2] {
            let executor = try PlanExecutor(plan: plan, threads: threads)
            for round in 0..<3 {
                let parameters = ["fc1.weight": TestTensors.random([200, 48], seed: 10 + UInt64(round)),
                                  "fc1.bias": TestTensors.random([200], seed: 20 + UInt64(round)),
                                  "fc2.weight": TestTensors.random([40, 200], seed: 30 + UInt64(round)),
                                  "fc2.bias": TestTensors.random([40], seed: 40 + UInt64(round))]
                if round == 2 {
                    // One tensor at a time, as checkpoint loading does.
                    for (name, value) in parameters { try executor.setParameter(name, value) }
                } else {
                    try executor.setParameters(parameters)
                }
                let expected = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: parameters)["y"]!
                for repeatRun in 0..<2 {
                    let y = try executor.run(inputs: inputs)["y"]!
                    XCTAssertLessThanOrEqual(GoldenCheck.relativeError(y, expected), 1e-5,
                                             "threads \(threads), parameters \(round), run \(repeatRun)")
                }
            }
        }
    }
}
