/// One attribute value of an IR instruction (`key=value`), as the parser reads it.
enum IRAttributeValue {
    case flag
    case word(IRToken)
    case list([Int])
    case call(IRToken, [IRToken])
    case string(IRToken)
}

/// The `key=value` attributes and flags of one instruction; each must be used exactly once.
struct IRAttributes {
    let op: String
    var values: [String: (key: IRToken, value: IRAttributeValue)] = [:]
    var order: [String] = []
    var used: Set<String> = []

    init(op: String) { self.op = op }

    mutating func add(_ key: IRToken, _ value: IRAttributeValue) throws {
        guard values[key.text] == nil else { throw IRError("bad attribute: '\(key.text)' is given twice") }
        values[key.text] = (key, value)
        order.append(key.text)
    }

    func checkAllUsed() throws {
        for key in order where !used.contains(key) {
            throw IRError("bad attribute: '\(key)' is not an attribute of '\(op)'")
        }
    }

    func missing(_ key: String) -> IRError { IRError("bad attribute: '\(op)' needs '\(key)='") }

    func spelled(_ key: String, _ value: IRAttributeValue) -> String {
        switch value {
        case .flag: return key
        case .word(let t): return "\(key)=\(t.text)"
        case .list(let v): return "\(key)=[\(v.map(String.init).joined(separator: ","))]"
        case .call(let f, let args): return "\(key)=\(f.text)(\(args.map(\.text).joined(separator: ",")))"
        case .string(let t): return "\(key)=\(t.text)"
        }
    }

    mutating func take(_ key: String) throws -> IRAttributeValue {
        guard let entry = values[key] else { throw missing(key) }
        used.insert(key)
        return entry.value
    }

    /// The optional `compute=f32|bf16` attribute any node may carry.
    mutating func computePrecision() throws -> ComputePrecision {
        let key = ComputePrecision.attributeKey
        guard values[key] != nil else { return .f32 }
        let value = try take(key)
        guard case .word(let t) = value, let precision = ComputePrecision(rawValue: t.text) else {
            throw IRError("bad attribute '\(spelled(key, value))': expected \(key)=f32 or \(key)=bf16")
        }
        return precision
    }

    mutating func flag(_ key: String) throws -> Bool {
        guard let entry = values[key] else { return false }
        used.insert(key)
        guard case .flag = entry.value else {
            throw IRError("bad attribute '\(spelled(key, entry.value))': '\(key)' is a flag and takes no value")
        }
        return true
    }

    mutating func int(_ key: String) throws -> Int {
        let value = try take(key)
        guard case .word(let t) = value, let v = Int(t.text) else {
            throw IRError("bad attribute '\(spelled(key, value))': expected an integer")
        }
        return v
    }

    mutating func float(_ key: String) throws -> Float {
        let value = try take(key)
        guard case .word(let t) = value, let v = Float(t.text) else {
            throw IRError("bad attribute '\(spelled(key, value))': expected a number")
        }
        return v
    }

    mutating func ints(_ key: String) throws -> [Int] {
        let value = try take(key)
        guard case .list(let v) = value else {
            throw IRError("bad attribute '\(spelled(key, value))': expected a list such as [0,1]")
        }
        return v
    }

    mutating func string(_ key: String) throws -> String {
        let value = try take(key)
        guard case .string(let t) = value else {
            throw IRError("bad attribute '\(spelled(key, value))': expected a quoted string")
        }
        return t.value
    }

    mutating func dtype(_ key: String) throws -> DType {
        let value = try take(key)
        guard case .word(let t) = value, let v = DType(rawValue: t.text) else {
            throw IRError("bad attribute '\(spelled(key, value))': expected f32, i32 or i64")
        }
        return v
    }

    mutating func initializer(_ key: String) throws -> Initializer {
        let value = try take(key)
        let bad = IRError("bad attribute '\(spelled(key, value))': expected zeros, ones, normal(std), "
            + "xavier_uniform(fanIn,fanOut), sincos_2d(h,w), rope_cos(h,w) or rope_sin(h,w)")
        switch value {
        case .word(let t) where t.text == "zeros": return .zeros
        case .word(let t) where t.text == "ones": return .ones
        case .call(let f, let args):
            if f.text == "normal" {
                guard args.count == 1, let std = Float(args[0].text) else { throw bad }
                return .normal(std: std)
            }
            let ints = args.compactMap { Int($0.text) }
            guard args.count == 2, ints.count == 2 else { throw bad }
            switch f.text {
            case "xavier_uniform": return .xavierUniform(fanIn: ints[0], fanOut: ints[1])
            case "sincos_2d": return .sinCos2D(gridH: ints[0], gridW: ints[1])
            case "rope_cos": return .ropeCos(gridH: ints[0], gridW: ints[1])
            case "rope_sin": return .ropeSin(gridH: ints[0], gridW: ints[1])
            default: throw bad
            }
        default:
            throw bad
        }
    }
}
