import CLoomKernels
import COpenBLAS
import Foundation
import LoomDistributed

/// One owner for the cores: OpenBLAS is single-threaded for good (its worker threads spin in
/// `sched_yield` after every multi-threaded call, stealing the core Loom's next kernel needs); Loom
/// spreads GEMMs over its own team by slabs or whole entries (`KernelLibrary.partitionedGEMM`,
/// `perEntryParallel`, both on the OpenMP team). With OpenMP the only pool, its workers may spin
/// between kernels (block time 200 ms unless the user chose one): a step launches thousands of short
/// parallel regions, and waking a sleeping vCPU for each costs more than the spin.
public enum Threading {
    nonisolated(unsafe) private static var configured = false

    /// Sets the team size for Loom's kernels; OpenBLAS stays at one thread.
    public static func setThreads(_ count: Int) {
        if !configured {
            setenv("KMP_BLOCKTIME", "200", 0)
            // Keep freed buffers in the heap: the executor allocates and frees the same sizes every
            // step, and returning them to the kernel makes each step fault its pages in again.
            loom_keep_heap_memory()
            configured = true
        }
        let n = Int32(min(max(1, count), maxThreads))
        loom_set_num_threads(n)
        openblas_set_num_threads(1)
    }

    /// Threads used when none is given: `LOOM_THREADS`, else the number of cores shared out among
    /// the ranks `mpirun` started on this machine (2 cores, 2 ranks: 1 thread each; an invalid
    /// `LOOM_THREADS` is reported by `validateEnvironment`; here it falls back to the cores).
    public static var defaultThreads: Int {
        if let text = ProcessInfo.processInfo.environment["LOOM_THREADS"], let n = Int(text), (1...maxThreads).contains(n) {
            return n
        }
        return max(1, min(ProcessInfo.processInfo.activeProcessorCount / MPICommunicator.localRanks, maxThreads))
    }

    /// The largest team Loom starts.
    public static let maxThreads = 1024

    /// A `--threads` value checked (1…1024), else the default team size.
    public static func resolve(_ flag: Int?) throws -> Int {
        guard let flag else { return defaultThreads }
        guard (1...maxThreads).contains(flag) else {
            throw RuntimeError("--threads \(flag): expected a thread count in 1…\(maxThreads)")
        }
        return flag
    }

    /// Throws when `LOOM_THREADS` is set to anything but a count in 1…1024.
    public static func validateEnvironment() throws {
        guard let text = ProcessInfo.processInfo.environment["LOOM_THREADS"] else { return }
        guard let n = Int(text), (1...maxThreads).contains(n) else {
            throw RuntimeError("LOOM_THREADS=\(text): expected a thread count in 1…\(maxThreads)")
        }
    }

    /// Runs `body(worker, index)` for every index below `count`, indices dealt round-robin to
    /// the team's threads, with Loom's kernels single-threaded inside (one owner per core); restores
    /// the team size afterwards.
    public static func perEntryParallel(_ count: Int, _ body: (Int, Int) -> Void) {
        let team = loom_get_num_threads()
        let workers = max(1, min(Int(team), count))
        guard workers > 1 else {
            for index in 0..<count { body(0, index) }
            return
        }
        loom_set_num_threads(1)
        defer { loom_set_num_threads(team) }
        withoutActuallyEscaping(body) { escapable in
            var entry = escapable
            withUnsafeMutablePointer(to: &entry) { context in
                loom_parallel_entries(Int64(count), Int32(workers), { context, worker, index in
                    context!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(worker), Int(index))
                }, context)
            }
        }
    }
}
