/// Traces model code into a `Graph`. Ops are recorded as they are called on `Tensor` handles;
/// each node remembers the module scope it was created in. Shape errors do not stop tracing:
/// they are collected, and `build()` throws the first one with its node, scope and shapes.
public final class GraphBuilder {
    public private(set) var graph: Graph
    private var scopeStack: [String] = []
    private var errors: [String] = []
    private var parameterNames: Set<String> = []

    /// Forward node that new nodes stem from (set by passes such as autodiff).
    public var origin: Int?

    public init(name: String) {
        graph = Graph(name: name)
    }

    /// Sets the GEMM operand precision of node `id` (passes that rewrite a graph keep it).
    public func setCompute(_ precision: ComputePrecision, of id: Int) {
        graph.nodes[id].compute = precision
    }

    /// Continues an existing graph: new nodes are appended after its nodes.
    public init(extending graph: Graph) {
        self.graph = graph
        for node in graph.parameterNodes {
            if case .parameter(let name, _, _) = node.op { parameterNames.insert(name) }
        }
    }

    /// A handle on existing node `id`.
    public func tensor(_ id: Int) -> Tensor { Tensor(id: id, type: graph.nodes[id].type, builder: self) }

    /// Runs `body` with the scope path replaced by `scope` (used by passes that emit nodes for
    /// an existing node's module).
    public func withScope<T>(_ scope: String, _ body: () throws -> T) rethrows -> T {
        let saved = scopeStack
        scopeStack = scope.isEmpty ? [] : [scope]
        defer { scopeStack = saved }
        return try body()
    }

    /// The current module path, e.g. `blocks.3.attn`.
    public var scope: String { scopeStack.joined(separator: ".") }

    /// Runs `body` with `name` appended to the module path (parameter keys and node scopes).
    public func scoped<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        scopeStack.append(name)
        defer { scopeStack.removeLast() }
        return try body()
    }

    /// A runtime input.
    public func input(_ name: String, _ type: TensorType) -> Tensor {
        if graph.inputNodes.contains(where: { $0.op == .input(name: name) }) {
            errors.append("input \"\(name)\" is declared twice")
        }
        return append(.input(name: name), [], declared: type)
    }

    /// A parameter (or, with `trainable: false`, a buffer) named `scope.name`.
    public func parameter(_ name: String, _ shape: [Int], initializer: Initializer,
                          trainable: Bool = true) -> Tensor {
        let key = scope.isEmpty ? name : scope + "." + name
        if !parameterNames.insert(key).inserted { errors.append("parameter \"\(key)\" is declared twice") }
        return append(.parameter(name: key, initializer: initializer, trainable: trainable), [],
                      declared: TensorType(.f32, shape))
    }

    /// A tensor filled with `value`.
    public func constant(_ value: Float, shape: [Int] = []) -> Tensor {
        append(.constant(value: value), [], declared: TensorType(.f32, shape))
    }

    /// A tensor whose elements are their index along `axis`.
    public func iota(shape: [Int], axis: Int) -> Tensor {
        append(.iota(axis: axis), [], declared: TensorType(.f32, shape))
    }

    /// Marks `tensor` as the graph output `name`.
    public func output(_ name: String, _ tensor: Tensor) {
        if graph.outputs.contains(where: { $0.name == name }) { errors.append("output \"\(name)\" is declared twice") }
        graph.outputs.append(GraphOutput(name: name, node: tensor.id))
    }

    /// Records a node. Used by the `Tensor` operators; also the way passes add raw ops.
    @discardableResult
    public func append(_ op: Op, _ inputs: [Tensor], declared: TensorType? = nil) -> Tensor {
        let id = graph.nodes.count
        let types = inputs.map(\.type)
        var type: TensorType
        do {
            type = try TypeInference.infer(op, types, declared: declared)
        } catch let error as IRError {
            let operands = describeOperands(inputs.map(\.id), types)
            let at = scope.isEmpty ? "top level" : scope
            errors.append("node %\(id) (\(op.mnemonic)) in \(at): \(error.message); operands \(operands)")
            type = declared ?? types.first ?? TensorType(.f32, [])
        } catch {
            fatalError("unexpected error \(error)")
        }
        graph.nodes.append(Node(id: id, op: op, inputs: inputs.map(\.id), type: type,
                                scope: scope, role: Graph.defaultRole(for: op), origin: origin))
        return Tensor(id: id, type: type, builder: self)
    }

    /// Records a block annotation (see `annotate(scope:block:repeated:)`).
    public func appendScopeBlock(_ annotation: ScopeBlock) {
        guard !graph.scopeBlocks.contains(where: { $0.scope == annotation.scope }) else { return }
        graph.scopeBlocks.append(annotation)
    }

    /// The finished graph, verified. Throws the first recorded shape error, if any.
    public func build() throws -> Graph {
        if let first = errors.first {
            let more = errors.count > 1 ? " (and \(errors.count - 1) more error(s))" : ""
            throw IRError(first + more)
        }
        var result = graph
        result.refreshRoles()
        try Verifier.verify(result)
        return result
    }
}
