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

/// Compiled plans (passes + memory plan) against the reference executor.
final class CompiledPlanTests: XCTestCase {
    static let fixtures = RepositoryPaths.fixtures

    /// Loss + gradient graph of a golden file with its inputs and parameters.
    func goldenCase(_ name: String) throws -> (Graph, [String: HostTensor], [String: HostTensor]) {
        let path = Self.fixtures.appendingPathComponent(name + ".safetensors").path
        let file = try SafeTensors.read(path: path)
        let config = try GoldenConfig(json: file.metadata["config"]!, source: path)
        let model = try DiffusionTransformer(config.model)
        let batch = file.tensors["x0"]!.shape[0]
        let graph = try Pipeline.differentiate(try objectiveGraph(model, batch: batch, settings: config.loss))
        var parameters: [String: HostTensor] = [:]
        for node in graph.parameterNodes { parameters[node.op.parameterName!] = file.tensors[Naming.goldenParameterPrefix + node.op.parameterName!] }
        var inputs: [String: HostTensor] = [:]
        for node in graph.inputNodes {
            guard case .input(let input) = node.op else { continue }
            if input == "ddpm_coef" {
                inputs[input] = HostTensor(shape: [batch, 2], floats: try DDPMSchedule().noisingCoefficients(file.tensors["t"]!.floats))
            } else if let weight = config.loss.runtimeInputs[input] {
                inputs[input] = .scalar(weight)
            } else {
                inputs[input] = file.tensors[input]
            }
        }
        return (graph, inputs, parameters)
    }

    func compare(_ plan: Plan, _ graph: Graph, _ inputs: [String: HostTensor], _ parameters: [String: HostTensor],
                 label: String, threads: Int = 1) throws -> Double {
        let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: parameters)
        let executor = try PlanExecutor(plan: plan, threads: threads)
        try executor.setParameters(parameters)
        let compiled = try executor.run(inputs: inputs)
        var worst = 0.0
        for (name, value) in reference {
            let error = GoldenCheck.relativeError(compiled[name]!, value)
            XCTAssertLessThanOrEqual(error, 1e-4, "\(label): \(name)")
            worst = max(worst, error)
        }
        return worst
    }

    func testUnfusedAndFusedPlansMatchReference() throws {
        for name in ["dit_tiny", "sit_ig_tiny", "lightning_ig_tiny"] {
            let (graph, inputs, parameters) = try goldenCase(name)
            let plain = try Pipeline.inference(fuse: false).plan(graph)
            let plainError = try compare(plain, graph, inputs, parameters, label: "\(name) unfused")
            let fused = try Pipeline.inference().plan(graph)
            let fusedError = try compare(fused, graph, inputs, parameters, label: "\(name) fused")
            let fusedTwo = try compare(fused, graph, inputs, parameters, label: "\(name) fused, 2 threads", threads: 2)
            print("\(name): unfused \(plainError), fused \(fusedError), fused at 2 threads \(fusedTwo)")
        }
    }

    /// `loom check-golden --compiled`: every golden tensor, gradients included, through the compiler.
    func testGoldenFilesPassThroughTheCompiledPath() throws {
        for name in ["dit_tiny", "sit_ig_tiny", "lightning_ig_tiny"] {
            let path = Self.fixtures.appendingPathComponent(name + ".safetensors").path
            let check = try GoldenCheck(path: path, rtol: 1e-4, threads: 1, compiled: true)
            XCTAssertTrue(check.passed, "\(name): \(check.rows.filter { !$0.passed }.map(\.name)) \(check.missing)")
            XCTAssertTrue(check.rows.contains { $0.name.hasPrefix("grad.") }, name)
        }
    }
}
