/// A short human summary of a graph: node counts by op, inputs, outputs, parameters.
public enum GraphSummary {
    public static func describe(_ graph: Graph) -> String {
        var counts: [String: Int] = [:]
        for node in graph.nodes { counts[node.op.mnemonic, default: 0] += 1 }
        let ops = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        var lines = ["graph \(graph.name): \(graph.nodes.count) nodes"]
        lines.append("  ops: " + ops)
        for node in graph.inputNodes {
            if case .input(let name) = node.op { lines.append("  input  \(name): \(node.type)") }
        }
        for output in graph.outputs { lines.append("  output \(output.name): \(graph.nodes[output.node].type)") }
        let trainable = graph.parameterNodes.filter { $0.role == .parameter }
        lines.append("  parameters: \(trainable.count) trainable tensors, "
                     + "\(trainable.reduce(0) { $0 + $1.type.elementCount }) elements; "
                     + "\(graph.parameterNodes.count - trainable.count) fixed buffers")
        return lines.joined(separator: "\n")
    }
}
