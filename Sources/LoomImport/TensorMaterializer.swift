import LoomData
import LoomIR
import LoomRuntime

/// Copies a strided tensor view out of its storage bytes into a dense `HostTensor`: floats
/// (float32, float16, bfloat16, float64) become f32 — exactly, except float64 which is rounded —
/// and integers keep their width (int64, int32). Sizes, strides and the offset are checked against
/// the storage before anything is read.
enum TensorMaterializer {
    static func host(_ tensor: TorchTensor, bytes: [UInt8], name: String, source: String) throws -> HostTensor {
        let storage = tensor.storage
        func fail(_ what: String) -> DiffusionError { DiffusionError("\(source): tensor \(name): \(what)") }
        guard tensor.size.count == tensor.stride.count, tensor.size.allSatisfy({ $0 >= 0 }), tensor.stride.allSatisfy({ $0 >= 0 }),
              tensor.offset >= 0 else {
            throw fail("size \(tensor.size), stride \(tensor.stride) and offset \(tensor.offset) do not describe a view")
        }
        guard let count = SizeLimits.elementCount(tensor.size) else { throw fail("size \(tensor.size) is too large") }
        guard let storageBytes = storage.count.multipliedReportingOverflow(by: storage.dtype.byteSize).overflow ? nil
                : storage.count * storage.dtype.byteSize, bytes.count >= storageBytes else {
            throw fail("storage data/\(storage.key) holds \(bytes.count) bytes, fewer than its \(storage.count) \(storage.dtype.rawValue) elements")
        }
        if count > 0 {
            var last = tensor.offset
            for (size, stride) in zip(tensor.size, tensor.stride) {
                guard let span = (size - 1).multipliedReportingOverflow(by: stride).overflow ? nil : (size - 1) * stride,
                      let next = SizeLimits.add(last, span) else { throw fail("the view overflows") }
                last = next
            }
            guard last < storage.count else {
                throw fail("the view reaches element \(last) of a storage of \(storage.count)")
            }
        }
        try MachineMemory.check(count * 8, 0, what: "\(source): tensor \(name)")
        let indices = elementIndices(tensor, count: count)
        return bytes.withUnsafeBytes { raw -> HostTensor in
            func load<T: FixedWidthInteger>(_ type: T.Type, _ index: Int) -> T {
                T(littleEndian: raw.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self))
            }
            switch storage.dtype {
            case .f32: return HostTensor(shape: tensor.size, floats: indices.map { Float(bitPattern: load(UInt32.self, $0)) })
            case .bf16: return HostTensor(shape: tensor.size, floats: indices.map { Float(bitPattern: UInt32(load(UInt16.self, $0)) << 16) })
            case .f16: return HostTensor(shape: tensor.size, floats: indices.map { halfToFloat(load(UInt16.self, $0)) })
            case .f64: return HostTensor(shape: tensor.size, floats: indices.map { Float(Double(bitPattern: load(UInt64.self, $0))) })
            case .i64: return HostTensor(shape: tensor.size, ints: indices.map { Int64(bitPattern: load(UInt64.self, $0)) })
            case .i32: return HostTensor(shape: tensor.size, ints: indices.map { Int64(Int32(bitPattern: load(UInt32.self, $0))) }, dtype: .i32)
            }
        }
    }

    /// Storage element index of every element of the view, row-major.
    static func elementIndices(_ tensor: TorchTensor, count: Int) -> [Int] {
        var out = [Int](repeating: tensor.offset, count: count)
        guard count > 0 else { return out }
        var index = [Int](repeating: 0, count: tensor.size.count)
        var position = tensor.offset
        for i in 0..<count {
            out[i] = position
            var axis = tensor.size.count - 1
            while axis >= 0 {
                index[axis] += 1
                position += tensor.stride[axis]
                if index[axis] < tensor.size[axis] { break }
                position -= tensor.stride[axis] * index[axis]
                index[axis] = 0
                axis -= 1
            }
        }
        return out
    }

    /// IEEE half to single precision, exactly (subnormals, infinities and NaN included).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h >> 15) << 31
        let exponent = Int((h >> 10) & 0x1F), fraction = UInt32(h & 0x3FF)
        switch exponent {
        case 0:
            let magnitude = Float(fraction) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -magnitude : magnitude
        case 31:
            return Float(bitPattern: sign | 0x7F80_0000 | (fraction << 13))
        default:
            return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (fraction << 13))
        }
    }
}
