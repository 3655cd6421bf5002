import LoomIR

/// Constant folding of fill constants, common-subexpression elimination and dead-code
/// elimination, in one rewrite.
public struct SimplifyPass: GraphPass {
    public let name: String

    public init(name: String = "simplify") {
        self.name = name
    }

    public func run(_ graph: Graph) throws -> Graph {
        let live = liveNodes(graph)
        var rewriter = GraphRewriter(graph)
        var seen: [String: Int] = [:]          // structural key → new id (CSE)
        var fills: [Int: Float] = [:]          // new id → value of a fill constant
        for node in graph.nodes where live.contains(node.id) {
            var op = node.op
            var inputs = node.inputs
            if let value = fold(node, fills: fills, map: rewriter.map) {
                op = .constant(value: value)
                inputs = []
            }
            let key = structuralKey(op, inputs.map { rewriter.map[$0]! }, node.type)
            if let key, let existing = seen[key] {
                rewriter.map[node.id] = existing
                continue
            }
            var copy = node
            copy.op = op
            copy.inputs = inputs
            let id = rewriter.emit(op, inputs, like: copy)
            rewriter.map[node.id] = id
            if let key { seen[key] = id }
            if case .constant(let value) = op { fills[id] = value }
        }
        return try rewriter.finish()
    }

    /// Nodes the outputs depend on (parameters are kept only when used).
    func liveNodes(_ graph: Graph) -> Set<Int> {
        var live = Set(graph.outputs.map(\.node))
        // A parameter named by an `update.<key>` output stays: the update is written into it.
        let updated = Set(graph.outputs.compactMap { Naming.strip(Naming.updatePrefix, from: $0.name) })
        for node in graph.parameterNodes where updated.contains(node.op.parameterName ?? "") { live.insert(node.id) }
        for id in stride(from: graph.nodes.count - 1, through: 0, by: -1) where live.contains(id) {
            live.formUnion(graph.nodes[id].inputs)
        }
        return live
    }

    /// Value of an elementwise op whose operands are all fill constants.
    func fold(_ node: Node, fills: [Int: Float], map: [Int: Int]) -> Float? {
        let values = node.inputs.compactMap { map[$0].flatMap { fills[$0] } }
        guard values.count == node.inputs.count, !values.isEmpty else { return nil }
        switch node.op {
        case .affine(let scale, let shift): return scale * values[0] + shift
        case .unary(let f):
            switch f {
            case .neg: return -values[0]
            case .square: return values[0] * values[0]
            case .abs: return Swift.abs(values[0])
            case .recip: return 1 / values[0]
            case .sqrt: return values[0].squareRoot()
            default: return nil  // transcendental functions stay with the kernels that define them
            }
        case .binary(let f):
            let (a, b) = (values[0], values[1])
            switch f {
            case .add: return a + b
            case .sub: return a - b
            case .mul: return a * b
            case .div: return a / b
            case .max: return Swift.max(a, b)
            case .min: return Swift.min(a, b)
            }
        case .reshape, .broadcast, .stopGradient: return values[0]
        default: return nil
        }
    }

    /// Key under which two nodes compute the same value; nil for nodes that must stay distinct.
    func structuralKey(_ op: Op, _ inputs: [Int], _ type: TensorType) -> String? {
        switch op {
        case .input, .parameter: return nil
        default: return "\(op)|\(inputs)|\(type)"
        }
    }
}
