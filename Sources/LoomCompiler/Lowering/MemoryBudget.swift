import LoomIR
import LoomRuntime

/// Compiles a training graph to fit a memory budget: the standard passes, then the fewest
/// rematerialised blocks (earliest first: their activations are held longest) whose plan —
/// arena plus parameters, gradients and optimizer state — fits `budget` bytes.
public enum MemoryBudget {
    /// A plan that fits, what it recomputes, and what that costs.
    public struct Fitted {
        public var plan: Plan
        /// Plan bytes (arena + parameter region) without rematerialisation.
        public var fastBytes: Int
        public var rematerialized: [String]
        /// Multiply-adds of one step without and with the recomputation.
        public var baseMACs: Int
        public var extraMACs: Int

        public var bytes: Int { plan.memory.arenaBytes + plan.memory.parameterBytes }
        public var extraComputeFraction: Double { baseMACs == 0 ? 0 : Double(extraMACs) / Double(baseMACs) }

        public var summary: String {
            let mib = { (b: Int) in String(format: "%.2f MiB", Double(b) / 1_048_576) }
            let which = rematerialized.isEmpty ? "no blocks rematerialised"
                : "rematerialising \(rematerialized.count) block(s) (\(rematerialized.first!)…\(rematerialized.last!))"
            return "memory budget: \(which); plan \(mib(bytes)) (arena \(mib(plan.memory.arenaBytes)) + parameters and state "
                + "\(mib(plan.memory.parameterBytes))) vs \(mib(fastBytes)) unconstrained; extra compute "
                + String(format: "%.3f GMACs (+%.1f%% of the step)", Double(extraMACs) / 1e9, 100 * extraComputeFraction)
        }
    }

    public static func compile(_ graph: Graph, budget: Int, passes: PassManager = .standard()) throws -> Fitted {
        let optimized = try passes.run(graph)
        let base = try PlanLowering.lower(optimized)
        let baseMACs = CostModel.total(of: optimized).macs
        let fastBytes = base.memory.arenaBytes + base.memory.parameterBytes
        if fastBytes <= budget {
            return Fitted(plan: base, fastBytes: fastBytes, rematerialized: [], baseMACs: baseMACs, extraMACs: 0)
        }
        let candidates = RematerializationPass.candidateBlocks(optimized)
        guard !candidates.isEmpty else {
            throw IRError("--memory-budget: the plan needs \(fastBytes) bytes and \(graph.name) has no blocks to rematerialise (is it a training graph?)")
        }
        // Plan bytes fall as more blocks are recomputed: binary search for the fewest that fit.
        func plan(_ count: Int) throws -> (Plan, Graph) {
            let rewritten = try RematerializationPass(blocks: Array(candidates.prefix(count))).run(optimized)
            return (try PlanLowering.lower(rewritten), rewritten)
        }
        var low = 1, high = candidates.count
        var best: (Plan, Graph, Int)?
        while low <= high {
            let mid = (low + high) / 2
            let (p, g) = try plan(mid)
            if p.memory.arenaBytes + p.memory.parameterBytes <= budget {
                best = (p, g, mid)
                high = mid - 1
            } else {
                low = mid + 1
            }
        }
        guard let (fitted, rewritten, count) = best else {
            let (p, _) = try plan(candidates.count)
            let smallest = p.memory.arenaBytes + p.memory.parameterBytes
            let mib = { (b: Int) in String(format: "%.2f MiB", Double(b) / 1_048_576) }
            throw IRError("--memory-budget \(mib(budget)) does not fit: rematerialising all \(candidates.count) blocks still needs "
                          + "\(mib(smallest)) (\(mib(p.memory.parameterBytes)) of it parameters, gradients and optimizer state)")
        }
        return Fitted(plan: fitted, fastBytes: fastBytes, rematerialized: Array(candidates.prefix(count)),
                      baseMACs: baseMACs, extraMACs: CostModel.total(of: rewritten).macs - baseMACs)
    }
}
