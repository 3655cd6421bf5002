import ArgumentParser
import Foundation
import LoomBenchmarking
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomDistributed
import LoomEvaluation
import LoomExperiments
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining

extension TimeSampling: ExpressibleByArgument {}

/// `loom train`: trains a zoo model on Fashion-MNIST or a folder of latents.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a zoo model (forward, backward, AdamW + EMA as one graph per step).",
        discussion: """
            Fashion-MNIST (Debian's dataset-fashion-mnist) is the default data: 28×28 images padded to 32×32,
            1 channel, 10 classes. --latents DIR trains on pre-encoded latents instead (safetensors shards with
            `latents` and `labels`, optional stats.safetensors). The run folder receives checkpoint.safetensors
            and loss.csv; Ctrl-C finishes the current step, saves, and exits; --resume continues bit for bit.
            Data parallel: `mpirun -np N loom train …` runs N ranks, each on batch/N samples of the global
            --batch, gradients averaged by MPI before the optimizer; rank 0 logs and writes the checkpoint
            (Docs/distributed.md).
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var loss: LossOptions

    @Option(help: "Fashion-MNIST folder.") var dataRoot = Dataset.fashionMNISTDefaultRoot
    @Option(help: "Train on a folder of latent shards instead of Fashion-MNIST.") var latents: String?
    @Option(help: "Use only the first N training samples.") var limit: Int?
    @Option(help: "Gradient accumulation: each step's --batch in K micro-batches (activations of batch/K only; the same step to float rounding).")
    var accumulate: Int?
    @Option(help: "Total optimizer steps.") var steps = 1000
    @Option(help: "Learning rate.") var lr: Float = 1e-4
    @Option(help: "Linear learning-rate warm-up steps.") var warmup = 0
    @Option(help: "EMA decay (0 disables the EMA copy).") var emaDecay: Float = 0.9999
    @Option(help: "AdamW decoupled weight decay.") var weightDecay: Float = 0
    @Option(help: "Global gradient-norm clip (0 disables).") var clip: Float = 1.0
    @Option(help: "Seed for weights, data order, noise and timesteps.") var seed: UInt64 = 0
    @Option(help: "Probability of the null label (for CFG).") var labelDropout: Float = 0.1
    @Option(help: "Timestep distribution for flow objectives: uniform or logit_normal.") var timeSampling: TimeSampling = .uniform
    @Option(help: "Training-acceleration weight ω (final-head target u + ω·sg(D_f − D_i)); 0 is plain IG training.")
    var omega: Float = 0
    @Flag(help: "Add the variational-bound term (DDPM + learn_sigma: the hybrid loss of DiT).") var vbLoss = false
    @Option(help: "Run folder for checkpoint and loss log.") var out = "runs/train"
    @Option(help: "Save a checkpoint every N steps.") var checkpointEvery = 500
    @Option(help: "Print progress every N steps.") var logEvery = 10
    @Option(help: "Continue from this checkpoint (its configuration is used; --steps may extend it).") var resume: String?
    @Option(help: "Threads (default: LOOM_THREADS or all cores).") var threads: Int?
    @Option(help: "Run this precompiled training plan (`loom compile --graph train`): the model, batch, objective, precision and EMA on/off must match its header; lr, λ, ω, clip, weight decay and EMA decay are run-time inputs, so this run's values apply.")
    var plan: String?
    @Flag(help: "Run steps on the reference executor instead of a compiled plan (slow; for checking).")
    var reference = false
    @Option(help: "Operand precision of the matrix products: \(PrecisionPolicy.spelled) (default fp32; a resumed run keeps its own).")
    var precision: PrecisionPolicy?
    @Flag(help: "Start afresh even when the run folder holds a checkpoint (replacing it and loss.csv).")
    var overwrite = false

    func validate() throws {
        try FlagCheck.count(steps, "--steps", min: 0)
        try FlagCheck.count(logEvery, "--log-every")
        try FlagCheck.count(checkpointEvery, "--checkpoint-every", min: 0)
        try FlagCheck.count(warmup, "--warmup", min: 0)
        if let limit { try FlagCheck.count(limit, "--limit") }
        if let accumulate { try FlagCheck.count(accumulate, "--accumulate", max: 1 << 20) }
        try FlagCheck.real(lr, "--lr", 1e-12...1e3)
        try FlagCheck.real(emaDecay, "--ema-decay", 0...0.999999999)
        try FlagCheck.real(weightDecay, "--weight-decay", 0...1e3)
        try FlagCheck.real(clip, "--clip", 0...1e12)
        try FlagCheck.real(labelDropout, "--label-dropout", 0...1)
        try FlagCheck.real(omega, "--omega", -1e3...1e3)
        if let threads { try FlagCheck.count(threads, "--threads", max: Threading.maxThreads) }
    }

    func run() throws {
        guard MPICommunicator.launchedByMPIRun else {
            do {
                try train(communicator: SingleProcess())
            } catch let error as DiffusionError {
                throw ValidationError(error.message)
            }
            return
        }
        // Under mpirun an error on one rank must stop them all (the others would wait in the next
        // allreduce): report it naming the rank, then MPI_Abort.
        let mpi = try MPICommunicator()
        do {
            try train(communicator: mpi)
        } catch let code as ExitCode {
            mpi.finalize()
            throw code
        } catch {
            let message = (error as? DiffusionError)?.message ?? "\(error)"
            FileHandle.standardError.write(Data("Error: rank \(mpi.rank) of \(mpi.size): \(message)\n".utf8))
            mpi.abort(code: 1)
        }
        mpi.finalize()
    }

    func loadData(limit: Int?, latents: String?) throws -> Dataset {
        if let latents { return try LatentFolder.load(path: latents, numClasses: model.classes) }
        return try Dataset.fashionMNIST(root: dataRoot, split: .train, padTo: model.inputSize ?? 32, limit: limit)
    }

    func train(communicator: Communicator) throws {
        let threadCount = try Threading.resolve(threads)
        let backend: TrainingBackend = reference ? .reference : .compiled
        let ranks = communicator.size
        if let resume {
            let (_, saved) = try peekConfig(resume)
            guard try saved.model.backbone == model.backbone() else {
                throw RuntimeError("\(resume) is a \(saved.model.backbone.rawValue) checkpoint (\(saved.model.displayName)), not \(model.model.rawValue): resume it with `loom train \(saved.model.backbone.rawValue) --resume …`")
            }
            if let objective = loss.objective, objective != saved.loss.objective {
                throw RuntimeError("--objective \(objective.rawValue) differs from the checkpoint's \(saved.loss.objective.rawValue) (\(resume)); a resumed run keeps its objective")
            }
            var config = saved
            if steps != 1000 || config.steps < steps { config.steps = max(steps, config.steps) }
            if let precision, precision != config.resolvedPrecision {
                throw DiffusionError("--precision \(precision.rawValue) differs from the checkpoint's \(config.resolvedPrecision.rawValue) (\(resume)); a resumed run keeps its precision")
            }
            if let limit, limit != config.limit {
                throw DiffusionError("--limit \(limit) differs from the checkpoint's \(config.limit.map { "\($0)" } ?? "none (all samples)") (\(resume)); a resumed run keeps its data")
            }
            switch (config.latents, latents) {
            case (nil, let given?):
                throw DiffusionError("--latents \(given): \(resume) was trained on Fashion-MNIST; a resumed run keeps its data")
            case (let saved?, nil):
                print("resuming on the latents the run was trained on: \(saved)")
            default: break
            }
            let dataset = try loadData(limit: config.limit, latents: latents ?? config.latents)
            let compiled = try stepPlan(config, backend: backend, ranks: ranks)
            let graph = try compiled?.plan.graph ?? Trainer.referenceGraph(config)
            let (state, _) = try TrainingState.load(path: resume, graph: graph)
            try finish(try Trainer(config: config, dataset: dataset, state: state, threads: threadCount, backend: backend,
                                   plan: compiled?.plan, planSource: compiled?.source ?? "the plan",
                                   communicator: communicator))
            return
        }
        let existing = out + "/checkpoint.safetensors"
        if !overwrite && FileManager.default.fileExists(atPath: existing) {
            throw RuntimeError("\(existing) already exists: continue it with --resume \(existing), or start afresh with --overwrite (replaces it and loss.csv)")
        }
        let dataset = try loadData(limit: limit, latents: latents)
        var modelConfig = try model.config()
        if model.inputSize == nil { modelConfig.inputSize = dataset.height }
        if model.channels == nil { modelConfig.inChannels = dataset.channels }
        if model.classes == nil { modelConfig.numClasses = dataset.numClasses }
        var optimizer = AdamWSettings()
        optimizer.emaDecay = emaDecay > 0 ? emaDecay : nil
        optimizer.clipNorm = clip > 0 ? clip : nil
        optimizer.weightDecay = weightDecay
        var settings = loss.settings(for: try model.backbone())
        settings.omega = omega
        settings.vbLoss = vbLoss
        var config = TrainingConfig(model: modelConfig, loss: settings, optimizer: optimizer, batch: model.batch,
                                    steps: steps, learningRate: lr, warmupSteps: warmup, seed: seed,
                                    labelDropout: labelDropout, timeSampling: timeSampling,
                                    precision: precision == .bf16 ? .bf16 : nil, limit: limit)
        config.accumulate = accumulate
        config.latents = latents
        let compiled = try stepPlan(config, backend: backend, ranks: ranks)
        try finish(try Trainer(config: config, dataset: dataset, threads: threadCount, backend: backend,
                               plan: compiled?.plan, planSource: compiled?.source ?? "the plan", communicator: communicator))
    }

    /// The `--plan` file (checked by the trainer against `config` by its header), or the step
    /// compiled now (one rank's share of the batch over `ranks`); nil for the reference backend
    /// without a plan.
    func stepPlan(_ config: TrainingConfig, backend: TrainingBackend, ranks: Int) throws -> (plan: Plan, source: String)? {
        _ = try config.rankStep(ranks: ranks)
        if let plan { return (try Plan.read(path: plan), plan) }
        guard backend == .compiled else { return nil }
        return (try Trainer.trainingPlan(config, ranks: ranks), "the compiled step")
    }

    func peekConfig(_ path: String) throws -> (SafeTensorsFile, TrainingConfig) {
        let file = try SafeTensors.read(path: path)
        return (file, try TrainingState.config(of: file, path: path))
    }

    func finish(_ trainer: Trainer) throws {
        let run = TrainingRun(directory: out, checkpointEvery: checkpointEvery, logEvery: logEvery)
        let outcome = try run.run(trainer) { print($0); fflush(stdout) }
        if outcome == .interrupted { throw ExitCode(130) }
    }
}
