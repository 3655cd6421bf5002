import CLoomKernels
import COpenBLAS
import Foundation

/// One owner for the cores: Loom's OpenMP kernels and OpenBLAS run one after the other, never
/// together, each with the same team size. Both spin-wait after work by default, which steals the
/// core the other needs, so OpenMP's block time is set to 0 unless the user chose one.
public enum Threading {
    nonisolated(unsafe) private static var configured = false

    /// Sets the team size for Loom's kernels and for OpenBLAS.
    public static func setThreads(_ count: Int) {
        if !configured {
            setenv("KMP_BLOCKTIME", "0", 0)
            // Keep freed buffers in the heap: the executor allocates and frees the same sizes every
            // step, and returning them to the kernel makes each step fault its pages in again.
            loom_keep_heap_memory()
            configured = true
        }
        let n = Int32(max(1, count))
        loom_set_num_threads(n)
        openblas_set_num_threads(n)
    }

    /// Threads used when none is given: `LOOM_THREADS`, else the number of cores.
    public static var defaultThreads: Int {
        if let text = ProcessInfo.processInfo.environment["LOOM_THREADS"], let n = Int(text), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// Runs `body(worker, index)` for every index below `count`, indices dealt round-robin to
    /// the team's threads, with Loom's kernels and OpenBLAS single-threaded inside (one owner per
    /// core); restores the team size afterwards.
    public static func perEntryParallel(_ count: Int, _ body: (Int, Int) -> Void) {
        let team = loom_get_num_threads()
        let workers = max(1, min(Int(team), count))
        guard workers > 1 else {
            for index in 0..<count { body(0, index) }
            return
        }
        loom_set_num_threads(1)
        openblas_set_num_threads(1)
        defer {
            loom_set_num_threads(team)
            openblas_set_num_threads(team)
        }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for index in stride(from: worker, to: count, by: workers) { body(worker, index) }
        }
    }
}
