/// The placement of every transient buffer in one arena, plus the numbers that say how good it is.
///
/// Layout: the pinned region `[0, pinnedBytes)` comes first, the shared region
/// `[pinnedBytes, arenaBytes)` after it. All sizes below are sizes rounded up to `alignment`.
public struct MemoryPlan: Equatable, Sendable {
    /// Request id → byte offset in the arena. Zero-byte requests sit at offset 0 and take no space.
    public var offsets: [Int: Int]
    /// Total arena size in bytes (a multiple of `alignment`).
    public var arenaBytes: Int
    /// Size of the pinned region at the start of the arena.
    public var pinnedBytes: Int
    /// Max over launch index of the bytes live at that launch (pinned included): no plan can use
    /// a smaller arena.
    public var lowerBound: Int
    /// Sum of all aligned sizes: the arena size with no reuse at all.
    public var totalRequested: Int
    /// `(arenaBytes - lowerBound) / arenaBytes`, 0 for an empty arena.
    public var fragmentation: Double
    /// Name of the placement order that produced this plan (see `MemoryPlanner.orderNames`).
    public var order: String
    /// The alignment the plan was made with: every offset and every size is a multiple of it.
    public var alignment: Int

    public init(offsets: [Int: Int], arenaBytes: Int, pinnedBytes: Int, lowerBound: Int,
                totalRequested: Int, fragmentation: Double, order: String, alignment: Int = 64) {
        self.offsets = offsets
        self.arenaBytes = arenaBytes
        self.pinnedBytes = pinnedBytes
        self.lowerBound = lowerBound
        self.totalRequested = totalRequested
        self.fragmentation = fragmentation
        self.order = order
        self.alignment = alignment
    }

    /// Bytes (aligned sizes, pinned included) of the requests live at launch `i`: one point of the
    /// memory timeline. Its maximum over all launches is `lowerBound`.
    public func bytesInUse(atLaunch i: Int, requests: [BufferRequest]) -> Int {
        var total = 0
        for r in requests where r.start <= i && i <= r.end {
            total += MemoryPlanner.alignUp(r.bytes, alignment)
        }
        return total
    }

    /// The memory timeline: bytes in use at every launch from the first start to the last end,
    /// computed with one sweep (O(n log n)) rather than one `bytesInUse` call per launch.
    public func timeline(requests: [BufferRequest]) -> [(launch: Int, bytes: Int)] {
        guard let first = requests.map(\.start).min(), let last = requests.map(\.end).max(),
              first <= last else { return [] }
        var delta = [Int](repeating: 0, count: last - first + 2)
        for r in requests where r.start <= r.end {
            let s = MemoryPlanner.alignUp(r.bytes, alignment)
            delta[r.start - first] += s
            delta[r.end - first + 1] -= s
        }
        var result: [(launch: Int, bytes: Int)] = []
        result.reserveCapacity(last - first + 1)
        var live = 0
        for k in 0...(last - first) {
            live += delta[k]
            result.append((first + k, live))
        }
        return result
    }

    /// Arena size over the lower bound (1.0 is optimal).
    public var ratioToLowerBound: Double {
        lowerBound == 0 ? 1 : Double(arenaBytes) / Double(lowerBound)
    }

    /// Human-readable one-paragraph summary for compiler logs.
    public var summary: String {
        func mib(_ b: Int) -> String {
            let v = Double(b) / 1_048_576
            return String(Double((v * 1000).rounded()) / 1000) + " MiB"
        }
        let ratio = (ratioToLowerBound * 1000).rounded() / 1000
        let frag = (fragmentation * 10000).rounded() / 100
        return "arena \(mib(arenaBytes)) (\(arenaBytes) B; pinned \(mib(pinnedBytes))), "
            + "lower bound \(mib(lowerBound)), ratio \(ratio), fragmentation \(frag)%, "
            + "no-reuse total \(mib(totalRequested)), \(offsets.count) buffers, order \(order)"
    }
}
