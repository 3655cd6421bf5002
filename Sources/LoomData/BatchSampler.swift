import Foundation
import LoomRuntime

/// Deterministic, resumable mini-batch order over `count` samples.
///
/// Each epoch visits the samples in a fresh permutation drawn from a `RandomStream` keyed by
/// (seed, epoch), cut into `count / batchSize` batches. **The last incomplete batch of an epoch
/// is dropped**: every batch has exactly `batchSize` indices, no index repeats within an epoch,
/// and the `count % batchSize` samples left out change from epoch to epoch. So batch number p
/// (`position`) depends only on (count, batchSize, seed, p): saving `position` and recreating
/// the sampler with `init(count:batchSize:seed:position:)` continues the identical sequence.
public struct BatchSampler: Sendable, Equatable {
    /// Number of samples.
    public let count: Int
    /// Indices per batch.
    public let batchSize: Int
    /// The shuffling seed.
    public let seed: UInt64
    /// Batches drawn so far; the next call to `next()` returns batch number `position`.
    public var position: UInt64

    private var cachedEpoch: UInt64? = nil
    private var cachedPermutation: [Int] = []

    /// A sampler at batch `position` (0 for a fresh run). Requires `0 < batchSize <= count`.
    public init(count: Int, batchSize: Int, seed: UInt64, position: UInt64 = 0) {
        precondition(batchSize > 0, "BatchSampler: batchSize must be positive, got \(batchSize)")
        precondition(count >= batchSize,
                     "BatchSampler: need at least one full batch: count \(count) < batchSize \(batchSize)")
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
        self.position = position
    }

    /// Full batches per epoch, `count / batchSize`.
    public var batchesPerEpoch: Int { count / batchSize }

    /// The epoch the next batch belongs to.
    public var epoch: UInt64 { position / UInt64(batchesPerEpoch) }

    /// The indices of the next batch; advances `position`.
    public mutating func next() -> [Int] {
        let perEpoch = UInt64(batchesPerEpoch)
        let epoch = position / perEpoch
        let slot = Int(position % perEpoch)
        if cachedEpoch != epoch {
            cachedPermutation = BatchSampler.permutation(count: count, seed: seed, epoch: epoch)
            cachedEpoch = epoch
        }
        position += 1
        return Array(cachedPermutation[(slot * batchSize)..<((slot + 1) * batchSize)])
    }

    /// The indices of batch number `position` without changing the sampler's state.
    public func batch(at position: UInt64) -> [Int] {
        var copy = self
        copy.position = position
        return copy.next()
    }

    /// The permutation of `0..<count` used in `epoch`: a Fisher–Yates shuffle driven by the
    /// Philox stream (seed, stream derived from `epoch`), 48 random bits per swap.
    public static func permutation(count: Int, seed: UInt64, epoch: UInt64) -> [Int] {
        var order = Array(0..<count)
        guard count > 1 else { return order }
        var random = RandomStream(seed: seed, stream: streamBase &+ epoch)
        // uniform() yields k / 2^24 exactly; two draws make a 48-bit integer.
        let draws = random.uniform(2 * (count - 1))
        draws.withUnsafeBufferPointer { u in
            order.withUnsafeMutableBufferPointer { p in
                var k = 0
                for i in stride(from: count - 1, through: 1, by: -1) {
                    let high = UInt64(u[k] * 16_777_216), low = UInt64(u[k + 1] * 16_777_216)
                    k += 2
                    let bits = (high << 24 | low) << 16  // a uniform fraction in [0, 1) as 0.64 fixed point
                    let j = Int(bits.multipliedFullWidth(by: UInt64(i + 1)).high)  // uniform in 0...i
                    p.swapAt(i, j)
                }
            }
        }
        return order
    }

    /// The random stream of epoch e is `streamBase + e`.
    static let streamBase = RandomStream.streamID("loom.data.batch-sampler")

    public static func == (a: BatchSampler, b: BatchSampler) -> Bool {
        a.count == b.count && a.batchSize == b.batchSize && a.seed == b.seed && a.position == b.position
    }
}
