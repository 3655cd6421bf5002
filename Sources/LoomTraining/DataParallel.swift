import Foundation
import LoomData

/// One rank's share of a data-parallel run: `ranks` processes (`mpirun -np ranks`) each run the same
/// step on `batch / ranks` consecutive samples of the global batch; rank r takes samples
/// `r·b ..< (r+1)·b` of every step's batch (b = batch / ranks).
public struct RankSlice: Equatable, Sendable {
    public let rank: Int
    public let ranks: Int

    /// The whole batch in one process.
    public static let single = RankSlice(rank: 0, ranks: 1)

    public init(rank: Int, ranks: Int) {
        precondition(ranks >= 1 && (0..<ranks).contains(rank), "RankSlice: rank \(rank) of \(ranks)")
        (self.rank, self.ranks) = (rank, ranks)
    }

    /// Samples per rank of a global batch of `batch`; refuses a batch the ranks cannot share evenly.
    public static func localBatch(_ batch: Int, ranks: Int) throws -> Int {
        guard ranks >= 1, batch % ranks == 0 else {
            throw DiffusionError("--batch \(batch) does not divide among \(ranks) ranks (mpirun -np \(ranks)): the global batch must be a multiple of the number of ranks")
        }
        return batch / ranks
    }
}

extension TrainingConfig {
    /// The configuration one rank's step is compiled for: everything as given, the batch divided
    /// among `ranks` (checked).
    public func rankStep(ranks: Int) throws -> TrainingConfig {
        var local = self
        local.batch = try RankSlice.localBatch(batch, ranks: ranks)
        return local
    }
}
