import CMPI
import Foundation

/// The ranks of an `mpirun` job over Open MPI's `MPI_COMM_WORLD`.
///
/// `allReduceMean` is an `MPI_Allgather` of every rank's values followed by a sum in rank order on
/// each rank, then a scale by 1 / size: the result does not depend on how Open MPI schedules the
/// exchange, so every rank holds the same bits and a rerun reproduces them. (It moves N times the
/// data a reduce-scatter would; for the models Loom trains on one machine the exchange is a small
/// part of a step — `Docs/distributed.md`.)
///
/// Errors: MPI calls keep Open MPI's default handler (`MPI_ERRORS_ARE_FATAL`), so a failed exchange
/// ends the whole job; a Swift error on one rank calls `abort`, i.e. `MPI_Abort`, which makes
/// `mpirun` stop every rank. A rank that dies makes `mpirun` kill the others.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    /// Seconds spent in `allReduceMean` so far (exchange and sum).
    public private(set) var allReduceSeconds = 0.0
    /// Calls of `allReduceMean` so far.
    public private(set) var allReduceCalls = 0
    private var gathered: [Float] = []
    private var finalized = false

    /// The environment variable Open MPI's launcher sets in every rank.
    public static let worldSizeVariable = "OMPI_COMM_WORLD_SIZE"
    /// The number of ranks on this machine, also set by the launcher.
    public static let localSizeVariable = "OMPI_COMM_WORLD_LOCAL_SIZE"

    /// True when this process was started by `mpirun` (Open MPI sets `OMPI_COMM_WORLD_SIZE`); only
    /// then does Loom call MPI at all.
    public static var launchedByMPIRun: Bool { ProcessInfo.processInfo.environment[worldSizeVariable] != nil }

    /// Ranks sharing this machine's cores: the launcher's local size, 1 without `mpirun`.
    public static var localRanks: Int {
        ProcessInfo.processInfo.environment[localSizeVariable].flatMap { Int($0) }.map { max(1, $0) } ?? 1
    }

    /// Initialises MPI (the main thread alone calls it: `MPI_THREAD_FUNNELED`).
    public init() throws {
        var provided: Int32 = 0
        let status = MPI_Init_thread(nil, nil, loom_mpi_thread_funneled(), &provided)
        guard status == loom_mpi_success() else { throw DistributedError("MPI_Init_thread failed with MPI error \(status)") }
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(loom_mpi_comm_world(), &r)
        MPI_Comm_size(loom_mpi_comm_world(), &s)
        (rank, size) = (Int(r), Int(s))
    }

    public func allReduceMean(_ values: UnsafeMutableBufferPointer<Float>) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            allReduceSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            allReduceCalls += 1
        }
        guard size > 1, let base = values.baseAddress else { return }
        let count = values.count
        guard count <= Int(Int32.max) else {
            throw DistributedError("rank \(rank): allreduce of \(count) values exceeds MPI's count limit")
        }
        // gathered[r·count ..< (r+1)·count] holds rank r's values.
        if gathered.count != size * count { gathered = [Float](repeating: 0, count: size * count) }
        let status = gathered.withUnsafeMutableBufferPointer { all in
            MPI_Allgather(base, Int32(count), loom_mpi_float(), all.baseAddress, Int32(count), loom_mpi_float(),
                          loom_mpi_comm_world())
        }
        guard status == loom_mpi_success() else {
            throw DistributedError("rank \(rank): MPI_Allgather failed with MPI error \(status)")
        }
        let scale = 1 / Float(size)
        gathered.withUnsafeBufferPointer { all in
            for i in 0..<count {
                var sum = all[i]
                for r in 1..<size { sum += all[r * count + i] }
                base[i] = sum * scale
            }
        }
    }

    public func abort(code: Int32) -> Never {
        MPI_Abort(loom_mpi_comm_world(), code)
        exit(code)
    }

    /// Ends MPI after a successful run (every rank must call it).
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        MPI_Finalize()
    }
}
