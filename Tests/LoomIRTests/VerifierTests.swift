import LoomTestSupport
import XCTest
@testable import LoomIR

/// Ill-formed graphs: each error names the node, its scope and the shapes involved.
final class VerifierTests: XCTestCase {
    private func f32(_ shape: Int...) -> TensorType { TensorType(.f32, shape) }

    private func node(_ id: Int, _ op: Op, _ inputs: [Int] = [], _ type: TensorType,
                      scope: String = "") -> Node {
        Node(id: id, op: op, inputs: inputs, type: type, scope: scope, role: Graph.defaultRole(for: op))
    }

    /// Asserts `Verifier.verify(graph)` throws an error whose message contains every fragment.
    private func assertRejects(_ graph: Graph, _ fragments: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        assertThrows(IRError.self, mentioning: fragments, file: file, line: line) { try Verifier.verify(graph) }
    }

    func testWellFormedGraphPasses() throws {
        let graph = Graph(name: "ok", nodes: [
            node(0, .input(name: "x"), [], f32(2, 3)),
            node(1, .unary(.silu), [0], f32(2, 3), scope: "blocks.0"),
        ], outputs: [GraphOutput(name: "y", node: 1)])
        XCTAssertNoThrow(try Verifier.verify(graph))
    }

    func testOperandUsedBeforeDefinition() {
        let graph = Graph(name: "g", nodes: [
            node(0, .input(name: "x"), [], f32(2, 3)),
            node(1, .binary(.add), [0, 2], f32(2, 3), scope: "blocks.1.mlp"),
            node(2, .unary(.exp), [0], f32(2, 3)),
        ])
        assertRejects(graph, ["node %1 (add) in blocks.1.mlp", "operand %2 is not defined before use"])
    }

    func testNodeIdNotMatchingPosition() {
        let graph = Graph(name: "g", nodes: [node(3, .input(name: "x"), [], f32(2))])
        assertRejects(graph, ["node %0 (input) in top level", "id is %3"])
    }

    func testDeclaredTypeMismatch() {
        let graph = Graph(name: "g", nodes: [
            node(0, .input(name: "x"), [], f32(2, 3)),
            node(1, .permute(perm: [1, 0]), [0], f32(2, 3), scope: "final_layer"),
        ])
        assertRejects(graph, ["node %1 (permute) in final_layer", "declared type f32[2,3]",
                              "the operands give f32[3,2]"])
    }

    func testMatmulInnerDimensionMismatchFromBuilder() {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", f32(4, 8))
        let y = b.scoped("blocks.2") {
            b.scoped("attn") {
                x.matmul(b.parameter("qkv.weight", [16, 32], initializer: .zeros))
            }
        }
        b.output("y", y)
        assertThrows(IRError.self, mentioning:
                     ["node %2 (matmul) in blocks.2.attn", "inner dimensions differ", "[4, 8]", "[16, 32]",
                      "(8 vs 16)", "%0: f32[4,8]", "%1: f32[16,32]"]) { try b.build() }
    }

    func testBuilderReportsFirstErrorAndCount() {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", f32(4, 8))
        let bad = x.reshape([3, 3])
        _ = bad.matmul(x)
        assertThrows(IRError.self, mentioning:
                     ["node %1 (reshape) in top level", "cannot reshape [4, 8] (32 elements) to [3, 3]",
                      "(and 1 more error(s))"]) { try b.build() }
    }

    func testBinaryBroadcastFailure() {
        let graph = Graph(name: "g", nodes: [
            node(0, .input(name: "a"), [], f32(2, 3)),
            node(1, .input(name: "b"), [], f32(4)),
            node(2, .binary(.mul), [0, 1], f32(2, 3), scope: "blocks.0.adaLN"),
        ])
        assertRejects(graph, ["node %2 (mul) in blocks.0.adaLN", "cannot broadcast [2, 3] with [4]",
                              "operands %0: f32[2,3], %1: f32[4]"])
    }

    func testDuplicateParameterName() {
        let graph = Graph(name: "g", nodes: [
            node(0, .parameter(name: "blocks.0.w", initializer: .zeros, trainable: true), [], f32(2)),
            node(1, .parameter(name: "blocks.0.w", initializer: .ones, trainable: false), [], f32(2),
                 scope: "blocks.0"),
        ])
        assertRejects(graph, ["node %1 (buffer) in blocks.0", "parameter \"blocks.0.w\" is declared twice"])

        let b = GraphBuilder(name: "g")
        b.scoped("blocks.0") {
            _ = b.parameter("w", [2], initializer: .zeros)
            _ = b.parameter("w", [2], initializer: .zeros)
        }
        assertThrows(IRError.self, mentioning: ["parameter \"blocks.0.w\" is declared twice"]) { try b.build() }
    }

    func testDuplicateInputAndOutputNames() {
        let inputs = Graph(name: "g", nodes: [
            node(0, .input(name: "x"), [], f32(2)),
            node(1, .input(name: "x"), [], f32(2)),
        ])
        assertRejects(inputs, ["node %1 (input)", "input \"x\" is declared twice"])
        let outputs = Graph(name: "g", nodes: [node(0, .input(name: "x"), [], f32(2))],
                            outputs: [GraphOutput(name: "y", node: 0), GraphOutput(name: "y", node: 0)])
        assertRejects(outputs, ["output \"y\" is declared twice"])
    }

    func testOutputReferencingMissingNode() {
        let graph = Graph(name: "g", nodes: [node(0, .input(name: "x"), [], f32(2))],
                          outputs: [GraphOutput(name: "eps", node: 5)])
        assertRejects(graph, ["output \"eps\" refers to %5, which does not exist"])
    }

    func testOriginReferencingMissingNode() {
        var graph = Graph(name: "g", nodes: [
            node(0, .input(name: "x"), [], f32(2)),
            node(1, .unary(.neg), [0], f32(2), scope: "grad"),
        ])
        graph.nodes[1].origin = 9
        assertRejects(graph, ["node %1 (neg) in grad", "origin %9 does not exist"])
    }

    func testWrongOperandCount() {
        let graph = Graph(name: "g", nodes: [
            node(0, .input(name: "x"), [], f32(2, 2)),
            node(1, .matmul(transposeA: false, transposeB: false), [0], f32(2, 2), scope: "blocks.3.mlp.fc1"),
        ])
        assertRejects(graph, ["node %1 (matmul) in blocks.3.mlp.fc1", "expects 2 operand(s), got 1"])
        let empty = Graph(name: "g", nodes: [node(0, .concat(axis: 0), [], f32(2))])
        assertRejects(empty, ["node %0 (concat)", "expects at least one operand"])
    }

    func testReshapeElementCountMismatch() {
        let graph = Graph(name: "g", nodes: [
            node(0, .input(name: "x"), [], f32(2, 3)),
            node(1, .reshape(shape: [4, 2]), [0], f32(4, 2), scope: "unpatch"),
        ])
        assertRejects(graph, ["node %1 (reshape) in unpatch", "cannot reshape [2, 3] (6 elements) to [4, 2]",
                              "%0: f32[2,3]"])
    }

    func testGatherWithFloatIndices() {
        let graph = Graph(name: "g", nodes: [
            node(0, .parameter(name: "y_embedder.table", initializer: .normal(std: 0.02), trainable: true), [],
                 f32(10, 4)),
            node(1, .input(name: "labels"), [], f32(3)),
            node(2, .gather, [0, 1], f32(3, 4), scope: "y_embedder"),
        ])
        assertRejects(graph, ["node %2 (gather) in y_embedder", "indices must be integers, got f32[3]"])
    }

    func testNonFloatParameterAndBadLeafTypes() {
        let param = Graph(name: "g", nodes: [
            node(0, .parameter(name: "w", initializer: .zeros, trainable: true), [], TensorType(.i64, [2])),
        ])
        assertRejects(param, ["node %0 (param)", "parameters must be f32, got i64[2]"])
        let iota = Graph(name: "g", nodes: [node(0, .iota(axis: 2), [], f32(4, 4))])
        assertRejects(iota, ["node %0 (iota)", "iota axis 2 out of range for f32[4,4]"])
        let unnamed = Graph(name: "g", nodes: [node(0, .input(name: ""), [], f32(1))])
        assertRejects(unnamed, ["input has an empty name"])
    }

    func testFloatOnlyOpsRejectIntegers() {
        let graph = Graph(name: "g", nodes: [
            node(0, .input(name: "ids"), [], TensorType(.i64, [4])),
            node(1, .softmax, [0], TensorType(.i64, [4]), scope: "head"),
        ])
        assertRejects(graph, ["node %1 (softmax) in head", "operand must be f32, got i64[4]"])
    }
}
