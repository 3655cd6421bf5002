import Foundation

/// Grow-only scratch memory for kernels, kept between launches: no allocation per launch once the
/// largest shape of a plan has run. Each slot is used by one thread at a time (a worker index of
/// the team); a lock guards only the growth. Launches run one at a time per process.
final class ScratchPool: @unchecked Sendable {
    /// The attention kernels' score blocks (slot 0, split per worker by the kernel).
    static let attention = ScratchPool()
    /// `loom_sgemm`'s packing buffers, one slot per worker.
    static let gemm = ScratchPool()

    private var buffers: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []
    private let lock = NSLock()

    /// At least `floats` floats for `slot`; earlier contents are not kept when it grows.
    func buffer(slot: Int = 0, floats: Int) -> UnsafeMutablePointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        while buffers.count <= slot { buffers.append((.allocate(capacity: 64), 64)) }
        if floats > buffers[slot].capacity {
            buffers[slot].pointer.deallocate()
            buffers[slot] = (.allocate(capacity: floats), floats)
        }
        return buffers[slot].pointer
    }
}
