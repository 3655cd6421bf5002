import LoomIR
import LoomRuntime

/// What the `remat` stage decided for a memory budget: which blocks it recomputes and what that
/// costs.
public struct BudgetFit: Sendable {
    public var budget: Int
    /// Plan bytes (arena + parameter region) without rematerialisation.
    public var fastBytes: Int
    /// Plan bytes with the chosen blocks rematerialised.
    public var fittedBytes: Int
    /// Of `fittedBytes`, the parameter region (parameters, gradients' state, optimizer state).
    public var parameterBytes: Int
    public var rematerialized: [String]
    /// Multiply-adds of one step without and with the recomputation.
    public var baseMACs: Int
    public var extraMACs: Int

    public var extraComputeFraction: Double { baseMACs == 0 ? 0 : Double(extraMACs) / Double(baseMACs) }

    public var summary: String {
        let mib = { (b: Int) in String(format: "%.2f MiB", Double(b) / 1_048_576) }
        let which = rematerialized.isEmpty ? "no blocks rematerialised"
            : "rematerialising \(rematerialized.count) block(s) (\(rematerialized.first!)…\(rematerialized.last!))"
        return "memory budget: \(which); plan \(mib(fittedBytes)) (arena \(mib(fittedBytes - parameterBytes)) + parameters and state "
            + "\(mib(parameterBytes))) vs \(mib(fastBytes)) unconstrained; extra compute "
            + String(format: "%.3f GMACs (+%.1f%% of the step)", Double(extraMACs) / 1e9, 100 * extraComputeFraction)
    }
}

/// The `remat` stage: fits a training step into a memory budget by recomputing the fewest blocks'
/// activations in backward (earliest blocks first: their activations are held longest). It lowers
/// candidates to measure them — arena plus parameters, gradients and optimizer state — and binary
/// searches the count. Runs after fusion, so no later CSE merges the copies back.
public struct MemoryBudgetPass: GraphPass {
    public var name: String { "remat" }
    public var budget: Int
    public var lossOutput: String

    public init(budget: Int, lossOutput: String = Naming.lossOutput) {
        self.budget = budget
        self.lossOutput = lossOutput
    }

    public func run(_ graph: Graph) throws -> Graph { try fit(graph).graph }

    /// The rewritten graph and what it cost.
    public func fit(_ graph: Graph) throws -> (graph: Graph, fit: BudgetFit) {
        func bytes(_ g: Graph) throws -> (total: Int, parameters: Int) {
            let lowered = try PlanLowering.assignBuffers(g)
            let memory = MemoryPlanner.plan(lowered.requests, alignment: PlanLowering.alignment)
            return (memory.arenaBytes + lowered.parameterBytes, lowered.parameterBytes)
        }
        let fast = try bytes(graph)
        let baseMACs = CostModel.total(of: graph).macs
        var result = BudgetFit(budget: budget, fastBytes: fast.total, fittedBytes: fast.total, parameterBytes: fast.parameters,
                               rematerialized: [], baseMACs: baseMACs, extraMACs: 0)
        if fast.total <= budget { return (graph, result) }
        let candidates = RematerializationPass.candidateBlocks(graph, lossOutput: lossOutput)
        guard !candidates.isEmpty else {
            throw IRError("--memory-budget: the plan needs \(fast.total) bytes and \(graph.name) has no blocks to rematerialise (is it a training graph?)")
        }
        func rewrite(_ count: Int) throws -> Graph {
            try RematerializationPass(blocks: Array(candidates.prefix(count)), lossOutput: lossOutput).run(graph)
        }
        // Plan bytes fall as more blocks are recomputed: binary search for the fewest that fit.
        var low = 1, high = candidates.count
        var best: (Graph, Int, (total: Int, parameters: Int))?
        while low <= high {
            let mid = (low + high) / 2
            let rewritten = try rewrite(mid)
            let size = try bytes(rewritten)
            if size.total <= budget {
                best = (rewritten, mid, size)
                high = mid - 1
            } else {
                low = mid + 1
            }
        }
        guard let (fitted, count, size) = best else {
            let smallest = try bytes(try rewrite(candidates.count))
            let mib = { (b: Int) in String(format: "%.2f MiB", Double(b) / 1_048_576) }
            throw IRError("--memory-budget \(mib(budget)) does not fit: rematerialising all \(candidates.count) blocks still needs "
                          + "\(mib(smallest.total)) (\(mib(smallest.parameters)) of it parameters, gradients and optimizer state)")
        }
        result.fittedBytes = size.total
        result.parameterBytes = size.parameters
        result.rematerialized = Array(candidates.prefix(count))
        result.extraMACs = CostModel.total(of: fitted).macs - baseMACs
        return (fitted, result)
    }
}
