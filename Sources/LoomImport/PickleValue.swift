/// A value of the restricted unpickler. Mutable containers are reference boxes, as in Python, so
/// that memoised references see later `SETITEM`/`APPEND` opcodes.
public indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// A global the unpickler knows (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, …).
    case global(KnownGlobal)
    /// A storage named by a persistent id: dtype, archive key, element count.
    case storage(TorchStorage)
    /// A tensor view of a storage.
    case tensor(TorchTensor)
    /// An object of a class the unpickler does not allow, kept inert: its name only. It is never
    /// called or built; it may only lie outside the part of the file being imported.
    case placeholder(String)

    /// A short description for reports.
    public var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple(let items): return "tuple of \(items.count)"
        case .list(let list): return "list of \(list.items.count)"
        case .dict(let dict): return "dict of \(dict.entries.count)"
        case .global(let g): return g.rawValue
        case .storage: return "storage"
        case .tensor(let t): return "tensor \(t.dtype.rawValue)\(t.size)"
        case .placeholder(let name): return "\(name) (kept inert, not imported)"
        }
    }

    /// The first placeholder inside this value, if any (an explicit stack: hostile files may nest
    /// deeply).
    public var firstPlaceholder: String? {
        var stack: [PickleValue] = [self]
        var visited = Set<ObjectIdentifier>()
        while let value = stack.popLast() {
            switch value {
            case .placeholder(let name): return name
            case .tuple(let items): stack += items.reversed()
            case .list(let list) where visited.insert(ObjectIdentifier(list)).inserted: stack += list.items.reversed()
            case .dict(let dict) where visited.insert(ObjectIdentifier(dict)).inserted:
                for entry in dict.entries.reversed() { stack += [entry.value, entry.key] }
            default: break
            }
        }
        return nil
    }
}

/// A pickled list.
public final class PickleList {
    public var items: [PickleValue] = []
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// A pickled dict (or OrderedDict), in insertion order.
public final class PickleDict {
    public private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var stringIndex: [String: Int] = [:]

    func set(_ key: PickleValue, _ value: PickleValue) {
        if case .string(let name) = key {
            if let index = stringIndex[name] {
                entries[index].value = value
                return
            }
            stringIndex[name] = entries.count
        }
        entries.append((key, value))
    }

    /// The value under string key `name`.
    public subscript(name: String) -> PickleValue? { stringIndex[name].map { entries[$0].value } }

    /// The string keys, in order.
    public var stringKeys: [String] {
        entries.compactMap { if case .string(let name) = $0.key { return name } else { return nil } }
    }
}

/// The only globals the unpickler resolves: what a PyTorch state dict needs.
public enum KnownGlobal: String, CaseIterable {
    case orderedDict = "collections.OrderedDict"
    case rebuildTensor = "torch._utils._rebuild_tensor_v2"
    case rebuildParameter = "torch._utils._rebuild_parameter"
    case floatStorage = "torch.FloatStorage"
    case halfStorage = "torch.HalfStorage"
    case bfloat16Storage = "torch.BFloat16Storage"
    case doubleStorage = "torch.DoubleStorage"
    case longStorage = "torch.LongStorage"
    case intStorage = "torch.IntStorage"

    /// The element type of a storage class.
    var storageType: TorchDType? {
        switch self {
        case .floatStorage: return .f32
        case .halfStorage: return .f16
        case .bfloat16Storage: return .bf16
        case .doubleStorage: return .f64
        case .longStorage: return .i64
        case .intStorage: return .i32
        default: return nil
        }
    }
}

/// Element types of the storages the importer reads.
public enum TorchDType: String {
    case f32 = "float32", f16 = "float16", bf16 = "bfloat16", f64 = "float64", i64 = "int64", i32 = "int32"

    var byteSize: Int {
        switch self {
        case .f16, .bf16: return 2
        case .f32, .i32: return 4
        case .f64, .i64: return 8
        }
    }
}

/// A storage of the archive: `data/<key>`, `count` elements of `dtype`.
public struct TorchStorage {
    public var dtype: TorchDType
    public var key: String
    public var count: Int
}

/// A strided view of a storage (`_rebuild_tensor_v2(storage, offset, size, stride, …)`).
public struct TorchTensor {
    public var storage: TorchStorage
    public var offset: Int
    public var size: [Int]
    public var stride: [Int]
    public var dtype: TorchDType { storage.dtype }
}
