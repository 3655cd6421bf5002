import Foundation
import LoomIR

/// Bytes a value occupies in host memory: 4 per f32 element, 8 per integer element (both integer
/// dtypes are held as Int64 so labels need no conversion).
public func storageBytes(_ type: TensorType) -> Int {
    type.elementCount * (type.dtype == .f32 ? 4 : 8)
}

/// A typed view of memory owned elsewhere (an arena slot or a `RawBuffer`).
public struct TensorRef {
    public let base: UnsafeMutableRawPointer
    public let type: TensorType

    public init(_ base: UnsafeMutableRawPointer, _ type: TensorType) {
        self.base = base
        self.type = type
    }

    public var count: Int { type.elementCount }
    public var shape: [Int] { type.shape }
    public var floats: UnsafeMutablePointer<Float> { base.assumingMemoryBound(to: Float.self) }
    public var ints: UnsafeMutablePointer<Int64> { base.assumingMemoryBound(to: Int64.self) }

    /// Copies the value out into a `HostTensor`.
    public func hostTensor() -> HostTensor {
        if type.dtype == .f32 {
            return HostTensor(shape: type.shape, floats: Array(UnsafeBufferPointer(start: floats, count: count)))
        }
        return HostTensor(shape: type.shape, ints: Array(UnsafeBufferPointer(start: ints, count: count)),
                          dtype: type.dtype)
    }

    /// Copies a host tensor of the same type into this memory.
    public func store(_ tensor: HostTensor) {
        if type.dtype == .f32 {
            tensor.floats.withUnsafeBufferPointer { src in
                if let from = src.baseAddress { floats.update(from: from, count: count) }
            }
        } else {
            tensor.ints.withUnsafeBufferPointer { src in
                if let from = src.baseAddress { ints.update(from: from, count: count) }
            }
        }
    }
}

/// Heap memory for one value, freed with the object (the reference executor's storage).
public final class RawBuffer {
    public let ref: TensorRef

    public init(_ type: TensorType) {
        let bytes = max(storageBytes(type), 8)
        let base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        ref = TensorRef(base, type)
    }

    public convenience init(_ tensor: HostTensor) {
        self.init(tensor.type)
        ref.store(tensor)
    }

    deinit { ref.base.deallocate() }
}
