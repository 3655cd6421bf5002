import CLoomKernels
import COpenBLAS
import Foundation

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
        let n = Int32(max(1, count))
        loom_set_num_threads(n)
        openblas_set_num_threads(1)
    }

    /// Threads used when none is given: `LOOM_THREADS`, else the number of cores.
    public static var defaultThreads: Int {
        if let text = ProcessInfo.processInfo.environment["LOOM_THREADS"], let n = Int(text), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
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
