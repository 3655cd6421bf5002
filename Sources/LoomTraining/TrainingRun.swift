import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomDistributed
import LoomGraphs
import LoomIR
import LoomRuntime

/// A whole `loom train` run: steps until done or interrupted, progress lines, a CSV loss log, and
/// atomic checkpoints (`checkpoint.safetensors` in the run folder) every N steps, at the end, and
/// when Ctrl-C / SIGTERM arrives (the step in flight finishes first).
///
/// Data parallel: rank 0 alone prints, keeps the loss log and writes checkpoints (the weights are
/// the same on every rank; the checkpoint holds the global configuration, so it does not depend on
/// the number of ranks). The ranks agree after every step whether one of them was interrupted, so
/// all stop after the same step.
public struct TrainingRun {
    public var directory: String
    public var checkpointEvery: Int
    public var logEvery: Int

    public init(directory: String, checkpointEvery: Int = 500, logEvery: Int = 10) {
        self.directory = directory
        self.checkpointEvery = checkpointEvery
        self.logEvery = logEvery
    }

    public var checkpointPath: String { directory + "/checkpoint.safetensors" }
    public var lossLogPath: String { directory + "/loss.csv" }
    /// Held while a process trains into the folder: a second one stops before it touches the log
    /// or the checkpoint.
    public var lockPath: String { TrainingRun.lockPath(directory: directory) }
    /// The lock a training process holds in run folder `directory` while it trains.
    public static func lockPath(directory: String) -> String { directory + "/train.lock" }

    /// Whether the run reached its last step or stopped on a signal after saving a checkpoint.
    public enum Outcome: Equatable { case finished, interrupted }

    /// Trains until `trainer.config.steps`; `report` receives progress lines.
    public func run(_ trainer: Trainer, report reportAll: (String) -> Void) throws -> Outcome {
        let leader = trainer.communicator.isLeader
        func report(_ line: String) { if leader { reportAll(line) } }
        var folderLock: FileLock?
        if leader {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            guard let lock = try FileLock.tryAcquire(lockPath) else {
                throw RuntimeError("run folder \(directory) is in use by another training process (it holds \(lockPath)); "
                                   + "wait for it or stop it, or train into another folder")
            }
            folderLock = lock
        }
        defer { folderLock?.release() }
        let log = leader ? try LossLog(path: lossLogPath, keepingStepsThrough: trainer.stepCount) : nil
        Interruption.install()
        let total = trainer.config.steps
        let start = Date()
        let firstStep = trainer.stepCount
        var outcome = Outcome.finished
        let ranks = trainer.communicator.size
        let share = ranks > 1 ? " over \(ranks) ranks (\(trainer.config.batch / ranks) each)" : ""
        report("training \(trainer.config.model.displayName) for steps \(firstStep + 1)…\(total), batch \(trainer.config.batch)\(share); run folder \(directory)")
        // `stepCount`, not `state.step`: the state copies every tensor out of the plan.
        while trainer.stepCount < total {
            let entry = try trainer.step()
            log?.append(entry)
            let done = entry.step - firstStep
            let elapsed = Date().timeIntervalSince(start)
            if entry.step % logEvery == 0 || entry.step == total || entry.step == firstStep + 1 {
                let rate = Double(done * trainer.config.batch) / max(elapsed, 1e-9)
                let eta = elapsed / Double(done) * Double(total - entry.step)
                var line = String(format: "step %d/%d  loss %.4f (final %.4f", entry.step, total, entry.loss, entry.lossFinal)
                if let inter = entry.lossInter { line += String(format: ", inter %.4f", inter) }
                line += String(format: ")  |g| %.3f  %.1f img/s  ETA %@", entry.gradNorm, rate, formatDuration(eta))
                report(line)
            }
            if checkpointEvery > 0 && entry.step % checkpointEvery == 0 && entry.step < total {
                // The log reaches the disk first: it never lags the checkpoint (rows past it are cut
                // on resume).
                try log?.flush()
                if leader { try trainer.state.save(to: checkpointPath, config: trainer.config) }
            }
            if try anyRankInterrupted(trainer) {
                outcome = .interrupted
                break
            }
        }
        try log?.flush()
        if leader { try trainer.state.save(to: checkpointPath, config: trainer.config) }
        let elapsed = Date().timeIntervalSince(start)
        let steps = trainer.stepCount - firstStep
        if outcome == .interrupted {
            report("interrupted at step \(trainer.stepCount): checkpoint saved; continue with --resume \(checkpointPath)")
        } else if steps > 0 {
            report(String(format: "done: %d steps in %@ (%.1f img/s); checkpoint %@, loss log %@", steps,
                          formatDuration(elapsed), Double(steps * trainer.config.batch) / max(elapsed, 1e-9),
                          checkpointPath, lossLogPath))
            if let mpi = trainer.communicator as? MPICommunicator {
                report(String(format: "rank 0: %.2f ms per step in MPI collectives (gradient allreduce, losses, stop flag)",
                              mpi.allReduceSeconds * 1000 / Double(steps)))
            }
        }
        return outcome
    }

    /// Whether Ctrl-C / SIGTERM reached any rank (one process: this one).
    func anyRankInterrupted(_ trainer: Trainer) throws -> Bool {
        guard trainer.communicator.size > 1 else { return Interruption.requested }
        return try trainer.communicator.allReduceMean([Interruption.requested ? 1 : 0])[0] > 0
    }
}

/// "1h02m", "3m20s", "42s".
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}

/// `loss.csv`: one row per step. On resume, rows past the checkpoint's step are dropped so the
/// log matches the run that continues.
final class LossLog {
    let path: String
    private var rows: [String]
    private var pending = 0

    init(path: String, keepingStepsThrough step: Int) throws {
        self.path = path
        let header = "step,loss,loss_final,loss_inter,grad_norm,lr"
        var kept = [header]
        if step > 0, FileManager.default.fileExists(atPath: path) {
            // The rows up to the checkpoint are kept; a log that cannot be read is an error, not
            // an empty log (which would be written over it).
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw RuntimeError("cannot read the loss log \(path) (not UTF-8 text) to resume it; move it away to start a new log")
            }
            for line in text.split(separator: "\n").dropFirst() {
                if let s = Int(line.split(separator: ",").first ?? ""), s <= step { kept.append(String(line)) }
            }
        }
        rows = kept
        try flush()
    }

    func append(_ entry: Trainer.StepLog) {
        let inter = entry.lossInter.map { "\($0)" } ?? ""
        rows.append("\(entry.step),\(entry.loss),\(entry.lossFinal),\(inter),\(entry.gradNorm),\(entry.learningRate)")
        pending += 1
        if pending >= 50 { try? flush() }
    }

    /// Writes the whole log to a temporary file, syncs it to the disk and renames it over the log
    /// (atomic: a crash leaves the old or the new log, whole).
    func flush() throws {
        let text = rows.joined(separator: "\n") + "\n"
        let temporary = path + ".tmp"
        do {
            try text.write(toFile: temporary, atomically: false, encoding: .utf8)
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: temporary))
            try handle.synchronize()
            try handle.close()
            guard rename(temporary, path) == 0 else {
                throw DiffusionError("cannot replace \(path): \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        pending = 0
    }
}
