/// One SSA instruction: an op applied to earlier nodes, with its static type and module scope.
public struct Node: Equatable, Sendable {
    /// Position in `Graph.nodes`; operands always refer to smaller ids.
    public var id: Int
    public var op: Op
    public var inputs: [Int]
    public var type: TensorType
    /// Module path of the code that created the node, e.g. `blocks.3.attn.qkv` ("" at top level).
    public var scope: String
    public var role: NodeRole
    /// For nodes made by a pass (autodiff, fusion): the forward node they stem from.
    public var origin: Int?
    /// Operand precision of the node's GEMMs (set by the precision pass; fp32 otherwise).
    public var compute: ComputePrecision

    public init(id: Int, op: Op, inputs: [Int], type: TensorType, scope: String,
                role: NodeRole, origin: Int? = nil, compute: ComputePrecision = .f32) {
        self.compute = compute
        self.id = id
        self.op = op
        self.inputs = inputs
        self.type = type
        self.scope = scope
        self.role = role
        self.origin = origin
    }
}

/// A named result of a graph.
public struct GraphOutput: Equatable, Sendable {
    public var name: String
    public var node: Int

    public init(name: String, node: Int) {
        self.name = name
        self.node = node
    }
}

/// A static dataflow graph in SSA form: nodes in topological order plus named outputs.
public struct Graph: Equatable, Sendable {
    public var name: String
    public var nodes: [Node]
    public var outputs: [GraphOutput]
    /// Notes left by passes (e.g. why a fusion was refused); printed as `//` lines in dumps and
    /// not part of the program.
    public var remarks: [String] = []
    /// Blocks of the model as annotated by its author (`ScopeBlock`), in model order.
    public var scopeBlocks: [ScopeBlock] = []

    public init(name: String, nodes: [Node] = [], outputs: [GraphOutput] = []) {
        self.name = name
        self.nodes = nodes
        self.outputs = outputs
    }

    /// Role a node of this op gets before outputs are marked.
    public static func defaultRole(for op: Op) -> NodeRole {
        switch op {
        case .input: return .input
        case .parameter(_, _, let trainable): return trainable ? .parameter : .buffer
        default: return .activation
        }
    }

    /// Parameter and buffer nodes, in graph order.
    public var parameterNodes: [Node] {
        nodes.filter { if case .parameter = $0.op { return true } else { return false } }
    }

    /// Input nodes, in graph order.
    public var inputNodes: [Node] {
        nodes.filter { if case .input = $0.op { return true } else { return false } }
    }

    /// The node that produces output `name`, if any.
    public func output(named name: String) -> Node? {
        outputs.first { $0.name == name }.map { nodes[$0.node] }
    }

    /// Number of elements in all parameters and buffers.
    public var parameterCount: Int { parameterNodes.reduce(0) { $0 + $1.type.elementCount } }

    /// Recomputes every node's role from its op and the output list.
    public mutating func refreshRoles() {
        let outputIDs = Set(outputs.map(\.node))
        for i in nodes.indices {
            let base = Graph.defaultRole(for: nodes[i].op)
            nodes[i].role = (base == .activation && outputIDs.contains(i)) ? .output : base
        }
    }
}

extension Graph {
    /// Elements PyTorch's `parameters()` would count: trainable parameters plus frozen parameters
    /// such as `pos_embed`, but not registered buffers like the RoPE tables.
    public var pytorchParameterCount: Int {
        parameterNodes.reduce(0) { total, node in
            if case .parameter(_, let initializer, _) = node.op {
                switch initializer {
                case .ropeCos, .ropeSin: return total
                default: return total + node.type.elementCount
                }
            }
            return total
        }
    }
}
