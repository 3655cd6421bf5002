import LoomIR

/// A graph-to-graph transformation.
public protocol GraphPass {
    /// Name used by `--dump-after=<name>`.
    var name: String { get }
    func run(_ graph: Graph) throws -> Graph
}

/// Runs passes in order, verifying the graph after each one and handing IR dumps to `dump`
/// after the passes named in `dumpAfter` (or after every pass with `dumpAll`).
public struct PassManager {
    public var passes: [GraphPass]
    public var dumpAfter: Set<String> = []
    public var dumpAll = false
    public var dump: ((String, String) -> Void)?

    public init(passes: [GraphPass]) {
        self.passes = passes
    }

    /// The standard pipeline: simplify, hoist the conditioning GEMMs, fuse the optimizer, fusion,
    /// simplify again, then the operand precision of every matrix product.
    public static func standard(fuse: Bool = true, precision: PrecisionPolicy = .fp32) -> PassManager {
        var passes: [GraphPass] = [SimplifyPass(), HoistConditioningPass()]
        if fuse { passes += [OptimizerFusionPass(), FusionPass(), SimplifyPass(name: "simplify-after-fusion")] }
        passes.append(PrecisionPass(policy: precision))
        return PassManager(passes: passes)
    }

    public var passNames: [String] { passes.map(\.name) }

    public func run(_ graph: Graph) throws -> Graph {
        let unknown = dumpAfter.subtracting(passNames)
        if let name = unknown.sorted().first {
            throw IRError("--dump-after=\(name): no such pass (passes: \(passNames.joined(separator: ", ")))")
        }
        var current = graph
        for pass in passes {
            current = try pass.run(current)
            do {
                try Verifier.verify(current)
            } catch let error as IRError {
                throw IRError("pass \(pass.name) produced an ill-formed graph: \(error.message)")
            }
            if dumpAll || dumpAfter.contains(pass.name) { dump?(pass.name, IRPrinter.print(current)) }
        }
        return current
    }
}
