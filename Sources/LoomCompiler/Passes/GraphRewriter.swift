import LoomIR

/// Builds a new graph from an old one: nodes are copied or replaced one by one, operands are
/// renumbered through `map`, and outputs follow their nodes.
struct GraphRewriter {
    let source: Graph
    let builder: GraphBuilder
    /// Old node id → new node id.
    var map: [Int: Int] = [:]

    init(_ source: Graph) {
        self.source = source
        builder = GraphBuilder(name: source.name)
    }

    /// Copies `node` with its operands renumbered.
    mutating func copy(_ node: Node) {
        map[node.id] = emit(node.op, node.inputs, like: node)
    }

    /// Appends `op` over old-graph operands, with `like`'s scope and origin; returns the new id.
    mutating func emit(_ op: Op, _ oldInputs: [Int], like node: Node) -> Int {
        emit(op, newInputs: oldInputs.map { map[$0]! }, like: node, origin: node.origin.flatMap { map[$0] })
    }

    /// Appends `op` over new-graph operands, with `like`'s scope, compute precision and the given
    /// origin; returns the new id.
    func emit(_ op: Op, newInputs: [Int], like node: Node, origin: Int?) -> Int {
        builder.origin = origin
        let declared: TensorType? = op.isLeaf ? node.type : nil
        let id = builder.withScope(node.scope) { builder.append(op, newInputs.map { builder.tensor($0) }, declared: declared) }.id
        builder.setCompute(node.compute, of: id)
        return id
    }

    /// The rewritten graph with outputs remapped; verified.
    func finish(remarks: [String] = []) throws -> Graph {
        var graph = builder.graph
        graph.outputs = source.outputs.map { GraphOutput(name: $0.name, node: map[$0.node]!) }
        graph.remarks = source.remarks + remarks
        graph.scopeBlocks = source.scopeBlocks
        graph.refreshRoles()
        try Verifier.verify(graph)
        return graph
    }
}

/// How many times each node is read (operands and graph outputs).
func useCounts(_ graph: Graph) -> [Int] {
    var counts = [Int](repeating: 0, count: graph.nodes.count)
    for node in graph.nodes { for operand in node.inputs { counts[operand] += 1 } }
    for output in graph.outputs { counts[output.node] += 1 }
    return counts
}

/// The readers of each node, in graph order (a node reading a value twice appears twice).
func consumerLists(_ graph: Graph) -> [[Int]] {
    var consumers = [[Int]](repeating: [], count: graph.nodes.count)
    for node in graph.nodes { for operand in node.inputs { consumers[operand].append(node.id) } }
    return consumers
}
