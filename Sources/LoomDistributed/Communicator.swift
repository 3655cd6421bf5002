import Foundation

/// The ranks of a data-parallel run as the runtime sees them: who this process is and the one
/// collective a training step needs. Executors are given one; `SingleProcess` is the run of one.
///
/// `allReduceMean` must be deterministic: the same contributions give bit-identical results on
/// every rank and on every rerun (implementations sum the ranks' values in rank order).
public protocol Communicator: AnyObject {
    /// This process's rank, 0 ..< `size`.
    var rank: Int { get }
    /// Number of ranks.
    var size: Int { get }
    /// Replaces `values` (the same count on every rank) by the mean over the ranks of each element,
    /// summed in rank order and scaled by 1 / `size`.
    func allReduceMean(_ values: UnsafeMutableBufferPointer<Float>) throws
    /// Stops every rank of the run after an error on this one (does not return).
    func abort(code: Int32) -> Never
}

extension Communicator {
    /// Rank 0 logs and writes files.
    public var isLeader: Bool { rank == 0 }

    /// `allReduceMean` over an array.
    public func allReduceMean(_ values: [Float]) throws -> [Float] {
        var copy = values
        try copy.withUnsafeMutableBufferPointer { try allReduceMean($0) }
        return copy
    }
}

/// The communicator of a run of one process: the mean over one rank is the value itself.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduceMean(_ values: UnsafeMutableBufferPointer<Float>) throws {}
    public func abort(code: Int32) -> Never { exit(code) }
}
