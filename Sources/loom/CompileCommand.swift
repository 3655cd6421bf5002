import ArgumentParser
import Foundation
import LoomBenchmarking
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining

/// `loom compile`: a zoo model's forward, loss or training step compiled to a plan file.
struct CompileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile",
        abstract: "Compile a zoo model's graph ahead of time into a plan file (fusion, memory plan).")

    @OptionGroup var selection: CompileSelection

    @Option(name: .shortAndLong, help: "Plan file to write.")
    var output: String?

    @Option(help: "Print the result of this stage (repeatable): autodiff, optimizer, fusion, lower, memory-plan, … (`--dump-all` lists them all).")
    var dumpAfter: [String] = []

    @Flag(help: "Print the result of every stage.")
    var dumpAll = false

    func validate() throws {
        // A bad --memory-budget is reported when the command runs; here only the stage names.
        guard let stages = try? selection.pipeline().stageNames else { return }
        if let unknown = dumpAfter.first(where: { !stages.contains($0) }) {
            throw ValidationError("--dump-after \(unknown): no such stage (stages: \(stages.joined(separator: ", ")))")
        }
    }

    func run() throws {
        var pipeline = try selection.pipeline()
        pipeline.dumpAll = dumpAll
        pipeline.dumpAfter = Set(dumpAfter)
        pipeline.dump = { name, text in print("// ---- after \(name) ----\n" + text, terminator: "") }
        let source = try selection.sourceGraph()
        let output: Pipeline.Output
        do {
            output = try selection.compile(source, with: pipeline)
        } catch let error as IRError {
            throw ValidationError(error.message)
        }
        if let fit = output.budgetFit { print(fit.summary) }
        let plan = output.plan
        printSummary(plan, source: source)
        do {
            try MachineMemory.check(plan.memory.arenaBytes, plan.memory.parameterBytes, what: "this plan")
        } catch let error as RuntimeError {
            // Plans are compiled ahead of time, possibly for a larger machine: say so, do not refuse.
            print("  note: \(error.message); `loom run` refuses it on this machine")
        }
        if let output = self.output {
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

    @Option(help: "forward, loss (forward + objective + gradients), train (… + AdamW/EMA update) or sampler-step; decoder or encoder for sd-vae and va-vae (--input-size: the image side, default 256).")
    var graph: CompiledGraphKind = .train

    @Flag(help: "Skip kernel fusion (the optimizer stays in primitive ops too).")
    var noFusion = false

    @Option(help: "Operand precision of the matrix products: \(PrecisionPolicy.spelled) (bf16: bf16 operands, fp32 accumulation; see Docs/precision.md).")
    var precision: PrecisionPolicy = .fp32

    @Option(help: "Training graphs: fit arena + parameters/gradients/optimizer state into this many bytes (K, M, G suffixes) by recomputing the fewest blocks' activations in backward.")
    var memoryBudget: String?

    @Option(help: "Training graphs: EMA decay the step is compiled for (0: no EMA copy); the decay itself is a run-time input.")
    var emaDecay: Float = 0.9999

    @Flag(help: "Training graphs: add the variational-bound term (DDPM + learn_sigma).")
    var vbLoss = false

    @Option(help: "Training graphs: one rank's step of a data-parallel run over N ranks (`mpirun -np N loom train --plan`): --batch stays the global batch, each rank runs batch/N, and the `allreduce` stage averages the gradients.")
    var ranks = 1

    /// Ranks checked: at least 1, and only for training graphs, whose batch they divide.
    func checkedRanks() throws -> Int {
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        guard ranks == 1 || graph == .train else { throw ValidationError("--ranks applies to --graph train only") }
        do {
            _ = try RankSlice.localBatch(model.batch, ranks: ranks)
        } catch let error as DiffusionError {
            throw ValidationError(error.message)
        }
        return ranks
    }

    func budgetBytes() throws -> Int? {
        try memoryBudget.map { try ByteCount.parse($0, flag: "--memory-budget") }
    }

    /// The training configuration a `--graph train` plan is compiled for (written into its header).
    func trainingConfig() throws -> TrainingConfig {
        var settings = loss.settings(for: try model.backbone())
        settings.vbLoss = vbLoss
        var optimizer = AdamWSettings()
        optimizer.emaDecay = emaDecay > 0 ? emaDecay : nil
        return TrainingConfig(model: try model.config(), loss: settings, optimizer: optimizer, batch: model.batch, steps: 0,
                              precision: precision == .bf16 ? .bf16 : nil)
    }

    /// The source graph: the forward pass, or the loss graph the pipeline differentiates; an
    /// autoencoder's decoder or encoder.
    func sourceGraph() throws -> Graph {
        if let vae = model.model.vae {
            let side = model.inputSize ?? 256, f = vae.downsamplingFactor
            guard model.batch > 0, side > 0, side % f == 0 else {
                throw ValidationError("--input-size \(side) (batch \(model.batch)): \(model.model.rawValue) needs a positive multiple of \(f)")
            }
            let autoencoder = try AutoencoderKL(vae)
            switch graph {
            case .decoder: return try autoencoder.decoderGraph(batch: model.batch, latentHeight: side / f, latentWidth: side / f)
            case .encoder: return try autoencoder.encoderGraph(batch: model.batch, height: side, width: side)
            default: throw ValidationError("\(model.model.rawValue) is an autoencoder: use --graph decoder or --graph encoder")
            }
        }
        switch graph {
        case .decoder, .encoder:
            throw ValidationError("--graph \(graph.rawValue) belongs to the autoencoders (sd-vae, va-vae), not \(model.model.rawValue)")
        case .forward: return try DiffusionTransformer(try model.config()).forwardGraph(batch: model.batch)
        case .samplerStep: return try step.graph(model: try model.config(), batch: model.batch)
        case .loss, .train: return try Trainer.lossGraph(try trainingConfig(), ranks: try checkedRanks())
        }
    }

    /// The compiler pipeline of this selection.
    func pipeline() throws -> Pipeline {
        switch graph {
        case .forward, .samplerStep, .decoder, .encoder: return .inference(precision: precision, fuse: !noFusion)
        case .loss: return .gradients(precision: precision, fuse: !noFusion)
        case .train:
            return Trainer.pipeline(try trainingConfig(), memoryBudget: try budgetBytes(), fuse: !noFusion, ranks: try checkedRanks())
        }
    }

    /// Runs `pipeline` on `source`; a training plan's header carries its configuration.
    func compile(_ source: Graph, with pipeline: Pipeline) throws -> Pipeline.Output {
        if graph == .train { return try Trainer.compile(try trainingConfig(), pipeline: pipeline, ranks: try checkedRanks()) }
        return try pipeline.compile(source)
    }

    /// The plan of this selection.
    func compile() throws -> Plan {
        do {
            return try compile(try sourceGraph(), with: try pipeline()).plan
        } catch let error as IRError {
            throw ValidationError(error.message)
        }
    }
}

/// The graphs `loom compile` can build.
enum CompiledGraphKind: String, ExpressibleByArgument, CaseIterable {
    case forward, loss, train
    case samplerStep = "sampler-step"
    /// The autoencoders' two graphs (`sd-vae`, `va-vae`).
    case decoder, encoder
}
