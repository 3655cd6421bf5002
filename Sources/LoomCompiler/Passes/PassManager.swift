import LoomIR

/// A graph-to-graph transformation: one stage of the `Pipeline`.
public protocol GraphPass {
    /// Name used by `--dump-after=<name>`.
    var name: String { get }
    func run(_ graph: Graph) throws -> Graph
}

/// Runs graph passes in order, verifying the graph after each one and handing IR dumps to `dump`
/// after the passes named in `dumpAfter` (or after every pass with `dumpAll`). The `Pipeline`
/// chooses the passes; tests may run any list.
public struct PassManager {
    public var passes: [GraphPass]
    public var dumpAfter: Set<String> = []
    public var dumpAll = false
    public var dump: ((String, String) -> Void)?

    public init(passes: [GraphPass]) {
        self.passes = passes
    }

    public var passNames: [String] { passes.map(\.name) }

    public func run(_ graph: Graph) throws -> Graph {
        var current = graph
        for pass in passes { current = try runOne(pass, current) }
        return current
    }

    /// Runs `pass`, verifies its result and dumps it when asked.
    func runOne(_ pass: GraphPass, _ graph: Graph, after: (Graph) throws -> Graph = { $0 }) throws -> Graph {
        let result = try after(try pass.run(graph))
        do {
            try Verifier.verify(result)
        } catch let error as IRError {
            throw IRError("pass \(pass.name) produced an ill-formed graph: \(error.message)")
        }
        if dumpAll || dumpAfter.contains(pass.name) { dump?(pass.name, IRPrinter.print(result)) }
        return result
    }
}
