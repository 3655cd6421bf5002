/// A pickle reader that is safe by construction: it interprets the opcodes a PyTorch state dict
/// needs (protocols 2–5) and executes nothing. The policy is that of `torch.load(weights_only=True)`:
///
/// - globals resolve only to `KnownGlobal` (OrderedDict, the tensor rebuild functions, storages);
/// - any other global becomes an inert `placeholder` carrying its name; calling, instantiating or
///   building one gives another placeholder, never a call. Importing a part of the file that
///   contains a placeholder is refused with its name (`TorchCheckpoint`);
/// - any opcode outside the supported set (`INST`, `OBJ`, `EXT*`, `PERSID` text ids, …) is refused
///   with its name and position.
public struct RestrictedUnpickler {
    /// Why a pickle was refused; the message names the opcode, global or position.
    public struct Refusal: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Resolves a persistent id (the tuple `('storage', class, key, location, count)`).
    public typealias PersistentLoader = (PickleValue) throws -> PickleValue

    let bytes: [UInt8]
    let source: String
    var position = 0
    var stack: [PickleValue] = []
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]
    let persistentLoad: PersistentLoader
    /// Names of the globals turned into placeholders, in order of appearance.
    public private(set) var placeholders: [String] = []

    public init(_ bytes: [UInt8], source: String, persistentLoad: @escaping PersistentLoader) {
        self.bytes = bytes
        self.source = source
        self.persistentLoad = persistentLoad
    }

    func refuse(_ what: String) -> Refusal { Refusal(message: "\(source): \(what)") }

    // MARK: reading

    mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count - position else {
            throw refuse("truncated pickle (wanted \(count) bytes at offset \(position), \(bytes.count - position) left)")
        }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    mutating func littleEndian(_ count: Int) throws -> UInt64 {
        try take(count).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func line() throws -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw refuse("truncated pickle (unterminated line at offset \(position))") }
        defer { position = end + 1 }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }

    mutating func text(_ count: Int) throws -> String {
        let slice = try take(count)
        guard let text = String(validating: slice, as: UTF8.self) else { throw refuse("invalid UTF-8 string at offset \(position - count)") }
        return text
    }

    mutating func pop() throws -> PickleValue {
        guard let top = stack.popLast() else { throw refuse("stack underflow at offset \(position - 1)") }
        if let mark = marks.last, stack.count < mark { throw refuse("stack underflow below a MARK at offset \(position - 1)") }
        return top
    }

    /// The value under the top of the stack's operands (the container SETITEM/APPEND fill).
    func top() throws -> PickleValue {
        guard let value = stack.last, marks.last.map({ stack.count > $0 }) ?? true else {
            throw refuse("no container under the opcode at offset \(position - 1)")
        }
        return value
    }

    mutating func popMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw refuse("no MARK for the opcode at offset \(position - 1)") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    func length(_ value: UInt64) throws -> Int {
        guard value <= UInt64(bytes.count) else { throw refuse("length \(value) exceeds the pickle's \(bytes.count) bytes") }
        return Int(value)
    }

    // MARK: running

    /// Runs the pickle to its `STOP` and returns the value it built.
    public mutating func load() throws -> PickleValue {
        while true {
            let at = position
            guard let opcode = try take(1).first else { throw refuse("truncated pickle") }
            if opcode == UInt8(ascii: ".") {
                guard let result = stack.last, stack.count == 1, marks.isEmpty else {
                    throw refuse("STOP with \(stack.count) values on the stack")
                }
                return result
            }
            try step(opcode, at: at)
        }
    }

    mutating func step(_ opcode: UInt8, at: Int) throws {
        switch opcode {
        case 0x80: _ = try take(1)                                           // PROTO
        case 0x95: _ = try take(8)                                           // FRAME
        case UInt8(ascii: "("): marks.append(stack.count)                    // MARK
        case UInt8(ascii: "}"): stack.append(.dict(PickleDict()))            // EMPTY_DICT
        case UInt8(ascii: "]"): stack.append(.list(PickleList()))            // EMPTY_LIST
        case UInt8(ascii: ")"): stack.append(.tuple([]))                     // EMPTY_TUPLE
        case 0x8F: stack.append(.list(PickleList()))                         // EMPTY_SET (inert, as a list)
        case UInt8(ascii: "t"): stack.append(.tuple(try popMark()))          // TUPLE
        case 0x85, 0x86, 0x87:                                               // TUPLE1…3
            var items: [PickleValue] = []
            for _ in 0..<Int(opcode - 0x84) { items.insert(try pop(), at: 0) }
            stack.append(.tuple(items))
        case UInt8(ascii: "N"): stack.append(.none)
        case 0x88: stack.append(.bool(true))
        case 0x89: stack.append(.bool(false))
        case UInt8(ascii: "K"): stack.append(.int(Int64(try littleEndian(1))))
        case UInt8(ascii: "M"): stack.append(.int(Int64(try littleEndian(2))))
        case UInt8(ascii: "J"): stack.append(.int(Int64(Int32(truncatingIfNeeded: try littleEndian(4)))))
        case 0x8A:                                                           // LONG1
            let n = Int(try littleEndian(1))
            guard n <= 8 else { throw refuse("integer of \(n) bytes at offset \(at) (more than 64 bits)") }
            let raw = try littleEndian(n)
            let shift = UInt64(64 - 8 * n)
            stack.append(.int(n == 0 ? 0 : Int64(bitPattern: raw << shift) >> Int64(shift)))
        case UInt8(ascii: "G"): stack.append(.float(Double(bitPattern: try take(8).reduce(0) { $0 << 8 | UInt64($1) })))
        case UInt8(ascii: "X"): stack.append(.string(try text(try length(try littleEndian(4)))))
        case 0x8C: stack.append(.string(try text(Int(try littleEndian(1)))))
        case 0x8D: stack.append(.string(try text(try length(try littleEndian(8)))))
        case UInt8(ascii: "B"): stack.append(.bytes(Array(try take(try length(try littleEndian(4))))))
        case UInt8(ascii: "C"): stack.append(.bytes(Array(try take(Int(try littleEndian(1))))))
        case 0x8E: stack.append(.bytes(Array(try take(try length(try littleEndian(8))))))
        case UInt8(ascii: "0"): _ = try pop()                               // POP
        case UInt8(ascii: "1"): _ = try popMark()                            // POP_MARK
        case UInt8(ascii: "q"): try memoize(Int(try littleEndian(1)))        // BINPUT
        case UInt8(ascii: "r"): try memoize(Int(try littleEndian(4)))        // LONG_BINPUT
        case 0x94: try memoize(memo.count)                                   // MEMOIZE
        case UInt8(ascii: "h"), UInt8(ascii: "j"):                           // BINGET, LONG_BINGET
            let index = Int(try littleEndian(opcode == UInt8(ascii: "h") ? 1 : 4))
            guard let value = memo[index] else { throw refuse("memo entry \(index) read before it was written (offset \(at))") }
            stack.append(value)
        case UInt8(ascii: "c"):                                              // GLOBAL
            let module = try line(), name = try line()
            stack.append(resolve(module, name))
        case 0x93:                                                           // STACK_GLOBAL
            let name = try pop(), module = try pop()
            guard case .string(let m) = module, case .string(let n) = name else { throw refuse("STACK_GLOBAL without strings at offset \(at)") }
            stack.append(resolve(m, n))
        case UInt8(ascii: "Q"): stack.append(try persistentLoad(try pop()))  // BINPERSID
        case UInt8(ascii: "R"):                                              // REDUCE
            let args = try pop(), callable = try pop()
            stack.append(try call(callable, args, at: at))
        case 0x81:                                                           // NEWOBJ
            let args = try pop(), cls = try pop()
            stack.append(try instantiate(cls, args, at: at))
        case 0x92:                                                           // NEWOBJ_EX
            _ = try pop()
            let args = try pop(), cls = try pop()
            stack.append(try instantiate(cls, args, at: at))
        case UInt8(ascii: "b"):                                              // BUILD
            let state = try pop(), object = try pop()
            stack.append(try build(object, state, at: at))
        case UInt8(ascii: "s"):                                              // SETITEM
            let value = try pop(), key = try pop()
            try setItems(on: try top(), [key, value], at: at)
        case UInt8(ascii: "u"):                                              // SETITEMS
            let items = try popMark()
            try setItems(on: try top(), items, at: at)
        case UInt8(ascii: "a"):                                              // APPEND
            let value = try pop()
            try append(to: try top(), [value], at: at)
        case UInt8(ascii: "e"), 0x90:                                        // APPENDS, ADDITEMS
            let items = try popMark()
            try append(to: try top(), items, at: at)
        default:
            throw refuse("opcode \(RestrictedUnpickler.opcodeName(opcode)) at offset \(at) is not allowed (only the opcodes of a tensor state dict are)")
        }
    }

    mutating func memoize(_ index: Int) throws {
        guard let top = stack.last else { throw refuse("memo write with an empty stack at offset \(position)") }
        memo[index] = top
    }

    mutating func resolve(_ module: String, _ name: String) -> PickleValue {
        let qualified = module + "." + name
        if let known = KnownGlobal(rawValue: qualified) { return .global(known) }
        placeholders.append(qualified)
        return .placeholder(qualified)
    }

    /// REDUCE: only the known constructors run (they build values; nothing executes).
    func call(_ callable: PickleValue, _ args: PickleValue, at: Int) throws -> PickleValue {
        guard case .tuple(let a) = args else { throw refuse("REDUCE with non-tuple arguments at offset \(at)") }
        switch callable {
        case .placeholder(let name): return .placeholder(name)
        case .global(.orderedDict):
            guard a.isEmpty else { throw refuse("OrderedDict with arguments at offset \(at)") }
            return .dict(PickleDict())
        case .global(.rebuildTensor):
            guard a.count >= 4, case .storage(let storage) = a[0], case .int(let offset) = a[1],
                  case .tuple(let size) = a[2], case .tuple(let stride) = a[3] else {
                throw refuse("_rebuild_tensor_v2 with unexpected arguments at offset \(at)")
            }
            return .tensor(TorchTensor(storage: storage, offset: Int(offset), size: try ints(size, at), stride: try ints(stride, at)))
        case .global(.rebuildParameter):
            guard let first = a.first, case .tensor = first else { throw refuse("_rebuild_parameter without a tensor at offset \(at)") }
            return first
        case .global(let known): throw refuse("\(known.rawValue) cannot be called (offset \(at))")
        default: throw refuse("REDUCE of a \(callable.kind) at offset \(at)")
        }
    }

    func instantiate(_ cls: PickleValue, _ args: PickleValue, at: Int) throws -> PickleValue {
        if case .placeholder(let name) = cls { return .placeholder(name) }
        if case .global(.orderedDict) = cls { return .dict(PickleDict()) }
        throw refuse("NEWOBJ of a \(cls.kind) at offset \(at)")
    }

    /// BUILD sets an object's attributes, never a dict's items. `Module.state_dict()` pickles its
    /// OrderedDict with the attribute `_metadata` (per-module versions), so a dict takes a dict
    /// state, which is dropped: the entries are the state dict.
    func build(_ object: PickleValue, _ state: PickleValue, at: Int) throws -> PickleValue {
        switch (object, state) {
        case (.placeholder, _): return object                 // inert: its state is dropped
        case (.dict, .none), (.dict, .dict): return object
        default: throw refuse("BUILD of a \(object.kind) with a \(state.kind) state at offset \(at)")
        }
    }

    func setItems(on target: PickleValue, _ items: [PickleValue], at: Int) throws {
        guard items.count % 2 == 0 else { throw refuse("SETITEMS with an odd number of values at offset \(at)") }
        switch target {
        case .dict(let dict):
            for i in stride(from: 0, to: items.count, by: 2) { dict.set(items[i], items[i + 1]) }
        case .placeholder: break
        default: throw refuse("SETITEM on a \(target.kind) at offset \(at)")
        }
    }

    func append(to target: PickleValue, _ items: [PickleValue], at: Int) throws {
        switch target {
        case .list(let list): list.items += items
        case .placeholder: break
        default: throw refuse("APPEND to a \(target.kind) at offset \(at)")
        }
    }

    func ints(_ values: [PickleValue], _ at: Int) throws -> [Int] {
        try values.map {
            guard case .int(let v) = $0 else { throw refuse("a tensor size or stride that is not an integer at offset \(at)") }
            return Int(v)
        }
    }

    /// A readable name for a refused opcode.
    static func opcodeName(_ opcode: UInt8) -> String {
        let names: [UInt8: String] = [UInt8(ascii: "i"): "INST", UInt8(ascii: "o"): "OBJ", UInt8(ascii: "P"): "PERSID",
                                      0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", UInt8(ascii: "S"): "STRING",
                                      UInt8(ascii: "V"): "UNICODE", UInt8(ascii: "I"): "INT", UInt8(ascii: "L"): "LONG",
                                      UInt8(ascii: "F"): "FLOAT", UInt8(ascii: "d"): "DICT", UInt8(ascii: "l"): "LIST",
                                      UInt8(ascii: "p"): "PUT", UInt8(ascii: "g"): "GET", 0x97: "NEXT_BUFFER",
                                      0x98: "READONLY_BUFFER", 0x96: "BYTEARRAY8", 0x91: "FROZENSET", 0x8B: "LONG4", UInt8(ascii: "2"): "DUP"]
        return names[opcode].map { "\($0) (0x\(String(opcode, radix: 16)))" } ?? "0x\(String(opcode, radix: 16))"
    }
}
