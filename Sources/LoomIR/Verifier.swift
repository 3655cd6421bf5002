/// Checks that a graph is well formed: SSA order, operand counts, types that match the op rules,
/// unique parameter, input and output names, and outputs that exist. Errors name the node,
/// its scope and the shapes involved.
public enum Verifier {
    public static func verify(_ graph: Graph) throws {
        var parameterNames: Set<String> = []
        var inputNames: Set<String> = []
        for (index, node) in graph.nodes.enumerated() {
            let at = "node %\(index) (\(node.op.mnemonic)) in \(node.scope.isEmpty ? "top level" : node.scope)"
            guard node.id == index else {
                throw IRError("\(at): id is %\(node.id) but it sits at position \(index)")
            }
            for operand in node.inputs where operand < 0 || operand >= index {
                throw IRError("\(at): operand %\(operand) is not defined before use")
            }
            if let origin = node.origin, origin < 0 || origin >= graph.nodes.count {
                throw IRError("\(at): origin %\(origin) does not exist")
            }
            switch node.op {
            case .parameter(let name, _, _):
                guard !name.isEmpty else { throw IRError("\(at): parameter has an empty name") }
                guard parameterNames.insert(name).inserted else {
                    throw IRError("\(at): parameter \"\(name)\" is declared twice")
                }
            case .input(let name):
                guard !name.isEmpty else { throw IRError("\(at): input has an empty name") }
                guard inputNames.insert(name).inserted else {
                    throw IRError("\(at): input \"\(name)\" is declared twice")
                }
            default:
                break
            }
            let operandTypes = node.inputs.map { graph.nodes[$0].type }
            let inferred: TensorType
            do {
                inferred = try TypeInference.infer(node.op, operandTypes,
                                                   declared: node.op.isLeaf ? node.type : nil)
            } catch let error as IRError {
                let operands = describeOperands(node.inputs, operandTypes)
                throw IRError("\(at): \(error.message); operands \(operands)")
            }
            guard inferred == node.type else {
                throw IRError("\(at): declared type \(node.type) but the operands give \(inferred)")
            }
        }
        var outputNames: Set<String> = []
        for output in graph.outputs {
            guard output.node >= 0, output.node < graph.nodes.count else {
                throw IRError("output \"\(output.name)\" refers to %\(output.node), which does not exist")
            }
            guard outputNames.insert(output.name).inserted else {
                throw IRError("output \"\(output.name)\" is declared twice")
            }
        }
    }
}
