import Foundation
import LoomData
import LoomIR
import LoomRuntime
import ZIPFoundation

/// A PyTorch checkpoint in the zip format of `torch.save` (`<prefix>/data.pkl` plus one file per
/// storage under `<prefix>/data/`), read without executing anything: the pickle runs on the
/// `RestrictedUnpickler`, storages are read from the archive, and tensors are copied out of them.
public struct TorchCheckpoint {
    public let path: String
    /// The unpickled object.
    public let root: PickleValue
    /// Globals the file names that were kept as inert placeholders.
    public let placeholders: [String]
    let archive: Archive
    let prefix: String

    /// Opens `path` and unpickles its `data.pkl`; errors name the file and what is wrong.
    public init(path: String) throws {
        if let problem = FileKind.problem(with: path) { throw DiffusionError("cannot read \(path): it \(problem)") }
        try ZipPrecheck.check(path: path)
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw DiffusionError("\(path) is not a PyTorch zip checkpoint (\(error)); legacy (pre-1.6, non-zip) files are not supported: re-save with torch.save")
        }
        try self.init(archive: archive, path: path)
    }

    // No in-memory reading: ZIPFoundation's memory-backed archive traps on some damaged inputs
    // (a range past the end of its buffer, found by fuzzing); its file-backed reader reports them.

    private init(archive: Archive, path: String) throws {
        let pickles = archive.filter { $0.path.hasSuffix("/data.pkl") && $0.path.split(separator: "/").count == 2 }
        guard pickles.count == 1, let pickle = pickles.first else {
            throw DiffusionError("\(path): expected one <name>/data.pkl in the archive, found \(pickles.count)")
        }
        let prefix = String(pickle.path.dropLast("data.pkl".count))
        if let order = archive[prefix + "byteorder"] {
            let text = String(decoding: try TorchCheckpoint.read(order, from: archive, path: path, limit: 16), as: UTF8.self)
            guard text == "little" else { throw DiffusionError("\(path): byte order '\(text)' is not supported (little-endian only)") }
        }
        let bytes = try TorchCheckpoint.read(pickle, from: archive, path: path, limit: 1 << 30)
        var unpickler = RestrictedUnpickler(bytes, source: path + ":" + pickle.path) { id in
            try TorchCheckpoint.storage(from: id, source: path)
        }
        do {
            root = try unpickler.load()
        } catch let refusal as RestrictedUnpickler.Refusal {
            throw DiffusionError(refusal.message)
        }
        placeholders = unpickler.placeholders
        self.path = path
        self.archive = archive
        self.prefix = prefix
    }

    /// The bytes of `entry`, refused above `limit` bytes (a zip may declare anything).
    static func read(_ entry: Entry, from archive: Archive, path: String, limit: Int) throws -> [UInt8] {
        guard entry.uncompressedSize <= UInt64(limit) else {
            throw DiffusionError("\(path): archive member \(entry.path) declares \(entry.uncompressedSize) bytes, more than the \(limit) allowed")
        }
        try MachineMemory.check(Int(entry.uncompressedSize), 0, what: "\(path): archive member \(entry.path)")
        var data = [UInt8]()
        data.reserveCapacity(Int(entry.uncompressedSize))
        do {
            _ = try archive.extract(entry) { chunk in
                guard data.count + chunk.count <= limit else { throw DiffusionError("\(path): archive member \(entry.path) is larger than it declares") }
                data += chunk
            }
        } catch let error as DiffusionError {
            throw error
        } catch {
            throw DiffusionError("\(path): archive member \(entry.path) is damaged (\(error))")
        }
        return data
    }

    /// The persistent id `('storage', <storage class>, key, location, count)`.
    static func storage(from id: PickleValue, source: String) throws -> PickleValue {
        guard case .tuple(let parts) = id, parts.count == 5, case .string("storage") = parts[0] else {
            throw RestrictedUnpickler.Refusal(message: "\(source): a persistent id that is not a storage reference (\(id.kind))")
        }
        guard case .global(let cls) = parts[1], let dtype = cls.storageType else {
            let name: String
            if case .placeholder(let n) = parts[1] { name = n } else { name = parts[1].kind }
            throw RestrictedUnpickler.Refusal(message: "\(source): storage class \(name) is not supported (float32/16, bfloat16, float64, int32/64 only)")
        }
        guard case .string(let key) = parts[2], !key.isEmpty, !key.contains("/"), !key.contains(".."),
              case .int(let count) = parts[4], count >= 0, count <= Int64(SizeLimits.maxElements) else {
            throw RestrictedUnpickler.Refusal(message: "\(source): a malformed storage reference")
        }
        return .storage(TorchStorage(dtype: dtype, key: key, count: Int(count)))
    }

    /// A report line per top-level entry: its key and what it holds.
    public func report() -> [String] {
        guard case .dict(let dict) = root else { return ["the file holds a \(root.kind)"] }
        return dict.entries.map { entry in
            let key: String
            if case .string(let s) = entry.key { key = s } else { key = entry.key.kind }
            if case .dict(let inner) = entry.value {
                let tensors = inner.entries.filter { if case .tensor = $0.value { return true } else { return false } }.count
                return "\(key): dict of \(inner.entries.count) (\(tensors) tensors)"
            }
            return "\(key): \(entry.value.kind)"
        }
    }

    /// The state dict under top-level `key` (nil: the file itself must be one), tensors in file
    /// order, converted to f32 / i64 / i32. Refuses a selection that holds a placeholder.
    public func stateDict(key: String?) throws -> [(String, HostTensor)] {
        let selected: PickleValue
        if let key {
            guard case .dict(let dict) = root, let value = dict[key] else {
                throw DiffusionError("\(path): no top-level entry '\(key)' (found: \(report().joined(separator: "; ")))")
            }
            selected = value
        } else {
            selected = root
            if case .dict(let dict) = root, dict.entries.contains(where: { if case .dict = $0.value { return true } else { return false } }) {
                throw DiffusionError("\(path) is a training checkpoint, not a state dict: choose an entry with --key (found: \(report().joined(separator: "; ")))")
            }
        }
        if let name = selected.firstPlaceholder {
            throw DiffusionError("\(path): \(key.map { "'\($0)'" } ?? "the file") holds an object of \(name), which is not allowed in a state dict (nothing was executed)")
        }
        guard case .dict(let dict) = selected else {
            throw DiffusionError("\(path): \(key.map { "'\($0)'" } ?? "the file") is a \(selected.kind), not a state dict")
        }
        let tensors = dict.entries.filter { if case .tensor = $0.value { return true } else { return false } }
        if tensors.count != dict.entries.count || tensors.isEmpty {
            let hint = key == nil ? "; choose one with --key (found: \(report().joined(separator: "; ")))" : ""
            throw DiffusionError("\(path): \(key.map { "'\($0)'" } ?? "the file") is not a flat dict of tensors\(hint)")
        }
        var storages: [String: [UInt8]] = [:]
        return try tensors.map { entry in
            guard case .string(let name) = entry.key, case .tensor(let tensor) = entry.value else {
                throw DiffusionError("\(path): a state-dict key that is not a string")
            }
            if storages[tensor.storage.key] == nil {
                guard let member = archive[prefix + "data/" + tensor.storage.key] else {
                    throw DiffusionError("\(path): tensor \(name): storage data/\(tensor.storage.key) is missing from the archive")
                }
                storages[tensor.storage.key] = try TorchCheckpoint.read(member, from: archive, path: path, limit: 1 << 40)
            }
            return (name, try TensorMaterializer.host(tensor, bytes: storages[tensor.storage.key]!, name: name, source: path))
        }
    }
}
