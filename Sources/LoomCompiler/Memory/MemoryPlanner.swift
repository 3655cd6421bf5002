/// One buffer to place: live from the launch that defines it (`start`) through its last use
/// (`end`, inclusive).
public struct BufferRequest: Equatable, Sendable {
    /// Unique id (the lowering's buffer number).
    public var id: Int
    /// Size in bytes; rounded up to the plan's alignment. Zero-byte requests take no space.
    public var bytes: Int
    /// Launch index that writes the buffer first.
    public var start: Int
    /// Launch index of its last use, inclusive (`start <= end`).
    public var end: Int
    /// Placed in a separate pinned region at a fixed offset and never shares memory with anything:
    /// e.g. values read after the plan ends. Pinned offsets depend only on the pinned requests.
    public var pinned: Bool

    public init(id: Int, bytes: Int, start: Int, end: Int, pinned: Bool = false) {
        self.id = id
        self.bytes = bytes
        self.start = start
        self.end = end
        self.pinned = pinned
    }
}

/// Static placement of transient buffers in one arena (offline dynamic storage allocation).
///
/// Pinned requests get consecutive offsets first, sorted by id. The shared region is filled by
/// best-fit placement in the style of XLA's heap simulator / TFLite's greedy-by-size: buffers are
/// taken in some order; each goes into the smallest gap (lowest offset on ties) between the byte
/// ranges of the already-placed buffers whose live intervals intersect its own, or above them all
/// when no gap fits. Several orders are tried (`orderNames`) and the smallest arena wins, the
/// earlier order on ties. Deterministic; O(n²) worst case per order with a small constant.
public enum MemoryPlanner {
    /// The placement orders tried, in tie-break priority.
    public static let orderNames = [
        "decreasing size",           // ties: earlier start, then id
        "decreasing size×lifetime",  // ties: larger size, earlier start, id
        "increasing start",          // first-fit in time; ties: larger size, id
        "decreasing lifetime",       // ties: larger size, earlier start, id
    ]

    public static func plan(_ requests: [BufferRequest], alignment: Int = 64) -> MemoryPlan {
        precondition(alignment > 0, "MemoryPlanner: alignment must be positive")
        var ids = Set<Int>(minimumCapacity: requests.count)
        for r in requests {
            precondition(r.bytes >= 0, "MemoryPlanner: buffer \(r.id) has negative size \(r.bytes)")
            precondition(r.start <= r.end, "MemoryPlanner: buffer \(r.id) has start \(r.start) > end \(r.end)")
            precondition(ids.insert(r.id).inserted, "MemoryPlanner: duplicate buffer id \(r.id)")
        }

        var offsets = [Int: Int](minimumCapacity: requests.count)
        var totalRequested = 0

        // Pinned region: consecutive, by id, independent of every other request.
        var pinnedBytes = 0
        for r in requests.filter(\.pinned).sorted(by: { $0.id < $1.id }) {
            let size = alignUp(r.bytes, alignment)
            totalRequested += size
            offsets[r.id] = size == 0 ? 0 : pinnedBytes
            pinnedBytes += size
        }

        // Shared region.
        var items: [Item] = []
        items.reserveCapacity(requests.count)
        for r in requests where !r.pinned {
            let size = alignUp(r.bytes, alignment)
            totalRequested += size
            if size == 0 { offsets[r.id] = 0 } else {
                items.append(Item(id: r.id, size: size, start: r.start, end: r.end))
            }
        }

        let sharedLower = lowerBound(requests.filter { !$0.pinned }, alignment: alignment)
        var bestOffsets: [Int] = []
        var bestSize = Int.max
        var bestOrder = orderNames[0]
        for (k, name) in orderNames.enumerated() {
            // An order is abandoned as soon as its arena reaches the best so far: it could only
            // tie (and lose to the earlier order) or be worse. Same result, less work.
            guard let (placed, size) = place(items, order: placementOrder(items, kind: k), bestFit: true,
                                             abandonAt: bestSize) else { continue }
            if size < bestSize {
                bestSize = size
                bestOffsets = placed
                bestOrder = name
            }
            if size <= sharedLower { break }  // optimal: no later order can be smaller
        }
        if items.isEmpty { bestSize = 0 }
        for (i, item) in items.enumerated() { offsets[item.id] = pinnedBytes + bestOffsets[i] }

        let arena = pinnedBytes + bestSize
        let lower = lowerBound(requests, alignment: alignment)
        return MemoryPlan(offsets: offsets, arenaBytes: arena, pinnedBytes: pinnedBytes,
                          lowerBound: lower, totalRequested: totalRequested,
                          fragmentation: arena == 0 ? 0 : Double(arena - lower) / Double(arena),
                          order: bestOrder, alignment: alignment)
    }

    /// Checks a plan: every request placed, aligned, inside the arena, pinned ones in the pinned
    /// region and shared ones after it, and no two requests whose intervals intersect (or of which
    /// one is pinned) overlap in memory. Returns the violations, empty when the plan is sound;
    /// each overlap message names both ids, their intervals and their byte ranges.
    public static func violations(_ plan: MemoryPlan, _ requests: [BufferRequest], alignment: Int) -> [String] {
        var out: [String] = []
        var seen = Set<Int>(minimumCapacity: requests.count)
        var spans: [Span] = []  // non-empty placed requests
        for r in requests {
            if !seen.insert(r.id).inserted { out.append("buffer \(r.id): duplicate id"); continue }
            if r.start > r.end { out.append("buffer \(r.id): empty interval \(r.start)...\(r.end)") }
            guard let off = plan.offsets[r.id] else { out.append("buffer \(r.id): not placed"); continue }
            let size = alignUp(r.bytes, alignment)
            let where_ = "buffer \(r.id) [t \(r.start)...\(r.end), bytes \(off)..<\(off + size)]"
            if alignment > 0 && off % alignment != 0 { out.append("\(where_): offset not \(alignment)-aligned") }
            if size == 0 { continue }
            if off < 0 || off + size > plan.arenaBytes {
                out.append("\(where_): outside the arena of \(plan.arenaBytes) bytes")
            }
            if r.pinned && off + size > plan.pinnedBytes {
                out.append("\(where_): pinned but outside the pinned region [0, \(plan.pinnedBytes))")
            }
            if !r.pinned && off < plan.pinnedBytes {
                out.append("\(where_): shared but inside the pinned region [0, \(plan.pinnedBytes))")
            }
            spans.append(Span(id: r.id, lo: off, hi: off + size, start: r.start, end: r.end, pinned: r.pinned))
        }
        // Byte-sorted sweep: only pairs that overlap in memory are compared.
        spans.sort { ($0.lo, $0.hi, $0.id) < ($1.lo, $1.hi, $1.id) }
        for i in spans.indices {
            let a = spans[i]
            var j = i + 1
            while j < spans.count && spans[j].lo < a.hi {
                let b = spans[j]
                if a.pinned || b.pinned || (a.start <= b.end && b.start <= a.end) {
                    out.append("buffers \(a.id) [t \(a.start)...\(a.end), bytes \(a.lo)..<\(a.hi)] and "
                        + "\(b.id) [t \(b.start)...\(b.end), bytes \(b.lo)..<\(b.hi)] overlap in memory"
                        + (a.pinned || b.pinned ? " (pinned)" : " while both live"))
                }
                j += 1
            }
        }
        return out
    }

    /// Max over launch index of the aligned bytes live at that launch, pinned included.
    public static func lowerBound(_ requests: [BufferRequest], alignment: Int = 64) -> Int {
        var events: [(time: Int, delta: Int)] = []
        events.reserveCapacity(2 * requests.count)
        for r in requests where r.start <= r.end {
            let s = alignUp(r.bytes, alignment)
            if s == 0 { continue }
            events.append((r.start, s))
            events.append((r.end + 1, -s))
        }
        events.sort { $0.time != $1.time ? $0.time < $1.time : $0.delta < $1.delta }
        var live = 0, peak = 0
        for e in events {  // frees (negative) sort before allocations at the same launch
            live += e.delta
            peak = max(peak, live)
        }
        return peak
    }

    @inline(__always)
    static func alignUp(_ bytes: Int, _ alignment: Int) -> Int {
        (bytes + alignment - 1) / alignment * alignment
    }

    // MARK: - Placement

    struct Item {
        var id: Int, size: Int, start: Int, end: Int
    }

    private struct Span {
        var id: Int, lo: Int, hi: Int, start: Int, end: Int, pinned: Bool
    }

    /// Indices into `items` in placement order `kind` (an index into `orderNames`). Every
    /// comparison ends on the unique id, so the order is total and the result deterministic.
    static func placementOrder(_ items: [Item], kind: Int) -> [Int] {
        let life = items.map { Double($0.end - $0.start + 1) }
        let area = items.indices.map { Double(items[$0].size) * life[$0] }
        return items.indices.sorted { i, j in
            let a = items[i], b = items[j]
            switch kind {
            case 0:
                if a.size != b.size { return a.size > b.size }
            case 1:
                if area[i] != area[j] { return area[i] > area[j] }
                if a.size != b.size { return a.size > b.size }
            case 2:
                if a.start != b.start { return a.start < b.start }
                if a.size != b.size { return a.size > b.size }
                return a.id < b.id
            default:
                if life[i] != life[j] { return life[i] > life[j] }
                if a.size != b.size { return a.size > b.size }
            }
            if a.start != b.start { return a.start < b.start }
            return a.id < b.id
        }
    }

    /// Places `items` one by one in `order`. Best fit: the smallest gap that fits among the byte
    /// ranges of already-placed, time-overlapping buffers (lowest offset on ties), else the top.
    /// First fit (`bestFit: false`, for comparison) takes the lowest gap that fits.
    /// Returns each item's offset (indexed like `items`) and the region size, or nil as soon as
    /// the region reaches `abandonAt` bytes.
    ///
    /// Placed buffers are kept sorted by offset in parallel arrays, so one pass over them in
    /// offset order visits the conflicting ones in order and sees every gap. Launch times are
    /// compressed to 32-bit ranks and tested 8 at a time with branch-free code (vectorized by the
    /// optimizer), so the O(n) pass per buffer costs little where few buffers conflict; the
    /// conflicting ones are then handled without data-dependent branches.
    static func place(_ items: [Item], order: [Int], bestFit: Bool,
                      abandonAt: Int = .max) -> (offsets: [Int], size: Int)? {
        let n = items.count
        var offsets = [Int](repeating: 0, count: n)
        guard n > 0 else { return (offsets, 0) }
        // Rank-compress launch times (order preserving, so intersection tests are unchanged).
        var times = items.flatMap { [$0.start, $0.end] }
        times.sort()
        var unique: [Int] = []
        unique.reserveCapacity(times.count)
        for t in times where unique.last != t { unique.append(t) }
        func rank(_ t: Int) -> Int32 {
            var lo = 0, hi = unique.count
            while lo < hi {
                let mid = (lo + hi) >> 1
                if unique[mid] < t { lo = mid + 1 } else { hi = mid }
            }
            return Int32(truncatingIfNeeded: lo)
        }

        // Offset-sorted placed buffers, struct-of-arrays; 8 spare slots keep the 8-wide tests in bounds.
        let capacity = n + 8
        let pLo = UnsafeMutablePointer<Int>.allocate(capacity: capacity)
        let pHi = UnsafeMutablePointer<Int>.allocate(capacity: capacity)
        let pStart = UnsafeMutablePointer<Int32>.allocate(capacity: capacity)
        let pEnd = UnsafeMutablePointer<Int32>.allocate(capacity: capacity)
        defer { pLo.deallocate(); pHi.deallocate(); pStart.deallocate(); pEnd.deallocate() }
        pStart.initialize(repeating: 0, count: capacity)
        pEnd.initialize(repeating: 0, count: capacity)
        var count = 0
        var top = 0

        for i in order {
            let item = items[i]
            let need = item.size
            let s = rank(item.start), e = rank(item.end)
            var chosen = -1
            var cursor = 0
            var bestGap = Int.max
            var k = 0
            while k < count {
                // Ranks are < 2³¹, so the differences cannot overflow: a placed buffer is live
                // during [s, e] when both are >= 0, i.e. when the sign bit of their OR is clear.
                // Plain scalar code: the optimizer vectorizes it, and debug builds stay fast.
                var bits: UInt32 = 0
                for j in 0..<8 {
                    let dead = UInt32(bitPattern: (e &- pStart[k &+ j]) | (pEnd[k &+ j] &- s)) >> 31
                    bits |= (dead ^ 1) << UInt32(j)
                }
                if count - k < 8 { bits &= (1 << UInt32(count - k)) - 1 }
                while bits != 0 {  // branch-free: conflicts come in unpredictable order
                    let idx = k + bits.trailingZeroBitCount
                    bits &= bits - 1
                    let gap = pLo[idx] - cursor  // <= 0 when the ranges touch or overlap
                    let fits = gap >= need && gap < bestGap && (bestFit || chosen < 0)
                    bestGap = fits ? gap : bestGap
                    chosen = fits ? cursor : chosen
                    cursor = max(cursor, pHi[idx])
                }
                // An exact fit (or any fit, for first fit) cannot be improved on by a later gap.
                if bestGap == need || (!bestFit && chosen >= 0) { break }
                k += 8
            }
            let off = chosen >= 0 ? chosen : cursor
            offsets[i] = off
            top = max(top, off + need)
            if top >= abandonAt { return nil }
            // Insert after every entry with lo <= off, keeping the arrays sorted by offset.
            var lo = 0, hi = count
            while lo < hi {
                let mid = (lo + hi) >> 1
                if pLo[mid] <= off { lo = mid + 1 } else { hi = mid }
            }
            let tail = count - lo
            if tail > 0 {
                (pLo + lo + 1).update(from: pLo + lo, count: tail)
                (pHi + lo + 1).update(from: pHi + lo, count: tail)
                (pStart + lo + 1).update(from: pStart + lo, count: tail)
                (pEnd + lo + 1).update(from: pEnd + lo, count: tail)
            }
            pLo[lo] = off
            pHi[lo] = off + need
            pStart[lo] = s
            pEnd[lo] = e
            count += 1
        }
        return (offsets, top)
    }
}
