import ArgumentParser
import Foundation
import LoomCompiler
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime

/// `loom compile`: a zoo model's forward, loss or training step compiled to a plan file.
struct CompileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile",
        abstract: "Compile a zoo model's graph ahead of time into a plan file (fusion, memory plan).")

    @OptionGroup var selection: CompileSelection

    @Option(name: .shortAndLong, help: "Plan file to write.")
    var output: String?

    @Option(help: "Print the IR after this pass (repeatable): \(PassManager.standard().passNames.joined(separator: ", ")), lower.")
    var dumpAfter: [String] = []

    @Flag(help: "Print the IR after every pass.")
    var dumpAll = false

    func run() throws {
        let source = try selection.sourceGraph()
        var passes = PassManager.standard(fuse: !selection.noFusion, precision: selection.precision)
        passes.dumpAll = dumpAll
        passes.dumpAfter = Set(dumpAfter.filter { $0 != "lower" })
        passes.dump = { name, text in print("// ---- IR after \(name) ----\n" + text, terminator: "") }
        let plan: Plan
        do {
            if let budget = try selection.budgetBytes() {
                let fitted = try MemoryBudget.compile(source, budget: budget, passes: passes)
                plan = fitted.plan
                print(fitted.summary)
            } else {
                plan = try PlanLowering.lower(try passes.run(source))
            }
        } catch let error as IRError {
            throw ValidationError(error.message)
        }
        if dumpAll || dumpAfter.contains("lower") { print("// ---- plan ----\n" + plan.encoded(), terminator: "") }
        printSummary(plan, source: source)
        do {
            try MachineMemory.check(plan.memory.arenaBytes, plan.memory.parameterBytes, what: "this plan")
        } catch let error as RuntimeError {
            // Plans are compiled ahead of time, possibly for a larger machine: say so, do not refuse.
            print("  note: \(error.message); `loom run` refuses it on this machine")
        }
        if let output {
            try plan.write(to: output)
            print("wrote \(output)")
        }
    }

    func printSummary(_ plan: Plan, source: Graph) {
        let m = plan.memory
        let fused = plan.graph.nodes.filter { if case .fused = $0.op { return true } else { return false } }
        var kinds: [String: Int] = [:]
        for node in fused { kinds[node.op.mnemonic, default: 0] += 1 }
        let mib = { (bytes: Int) in String(format: "%.2f MiB", Double(bytes) / 1_048_576) }
        print("plan \(plan.graph.name): \(source.nodes.count) nodes → \(plan.graph.nodes.count) after passes; fused kernels: "
              + (kinds.isEmpty ? "none" : kinds.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")))
        print("  arena \(mib(m.arenaBytes)) (lower bound \(mib(m.lowerBound)), sum of all values \(mib(m.totalRequested)), "
              + String(format: "fragmentation %.1f%%", m.fragmentation * 100) + ", \(m.inPlaceCount) in place); "
              + "parameters and optimizer state \(mib(m.parameterBytes))")
        var partitions: [LaunchPartition: Int] = [:]
        for partition in plan.partitions where partition != .none { partitions[partition, default: 0] += 1 }
        print("  launches by thread partition: " + LaunchPartition.allCases.compactMap { kind in
            partitions[kind].map { "\(kind.rawValue) ×\($0)" }
        }.joined(separator: ", "))
        let refused = plan.graph.remarks.filter { !$0.hasPrefix("remat:") }.count
        if refused > 0 {
            print("  \(refused) fusion(s) refused; see --dump-after fusion")
        }
    }
}

/// The model, graph kind and pipeline that `loom compile` and `loom profile` compile.
struct CompileSelection: ParsableArguments {
    @OptionGroup var model: ModelOptions
    @OptionGroup var loss: LossOptions
    @OptionGroup var step: SamplerStepOptions

    @Option(help: "forward, loss (forward + objective + gradients), train (… + AdamW/EMA update) or sampler-step.")
    var graph: CompiledGraphKind = .train

    @Flag(help: "Skip the fusion pass.")
    var noFusion = false

    @Option(help: "Operand precision of the matrix products: \(PrecisionPolicy.spelled) (bf16: bf16 operands, fp32 accumulation; see Docs/precision.md).")
    var precision: PrecisionPolicy = .fp32

    @Option(help: "Training graphs: fit arena + parameters/gradients/optimizer state into this many bytes (K, M, G suffixes) by recomputing the fewest blocks' activations in backward.")
    var memoryBudget: String?

    func budgetBytes() throws -> Int? {
        try memoryBudget.map { try ByteCount.parse($0, flag: "--memory-budget") }
    }

    func sourceGraph() throws -> Graph {
        let network = try DiffusionTransformer(try model.config())
        let settings = loss.settings(for: model.model)
        switch graph {
        case .forward: return try network.forwardGraph(batch: model.batch)
        case .samplerStep: return try step.graph(model: try model.config(), batch: model.batch)
        case .loss:
            return try Autodiff.differentiate(try lossGraph(network, batch: model.batch, settings: settings), loss: "loss")
        case .train:
            let grads = try Autodiff.differentiate(try lossGraph(network, batch: model.batch, settings: settings), loss: "loss")
            var train = try OptimizerPass.append(grads, settings: AdamWSettings())
            train.name = network.graphName("train")
            return train
        }
    }

    func compile() throws -> Plan {
        do {
            if let budget = try budgetBytes() {
                return try MemoryBudget.compile(try sourceGraph(), budget: budget,
                                                passes: .standard(fuse: !noFusion, precision: precision)).plan
            }
            return try PlanCompiler.compile(try sourceGraph(), passes: .standard(fuse: !noFusion, precision: precision))
        } catch let error as IRError {
            throw ValidationError(error.message)
        }
    }
}

/// The graphs `loom compile` can build.
enum CompiledGraphKind: String, ExpressibleByArgument, CaseIterable {
    case forward, loss, train
    case samplerStep = "sampler-step"
}
