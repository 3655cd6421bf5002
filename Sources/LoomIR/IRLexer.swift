/// One token of a line of textual IR.
struct IRToken {
    enum Kind: Equatable {
        /// A run of letters, digits and `_ . + -`: identifiers, numbers, `inf`, `nan`.
        case word
        /// A double-quoted string; `value` holds the unescaped text.
        case string
        /// `%N`; `value` holds the digits.
        case percent
        /// One of `( ) [ ] , = : { }`.
        case punct
        /// `#` and the rest of the line; `value` holds the raw text after `#`.
        case comment
        /// End of the line.
        case end
    }

    var kind: Kind
    /// The source spelling, used in error messages.
    var text: String
    var value: String
    /// 1-based column of the first character.
    var column: Int

    /// How error messages name the token.
    var quoted: String { kind == .end ? "end of line" : "'\(text)'" }
}

/// Splits lines of textual IR into tokens. Errors carry only the message; the parser adds
/// `source:line:`.
enum IRLexer {
    static func isSpace(_ c: Unicode.Scalar) -> Bool { c == " " || c == "\t" || c == "\r" || c == "\n" }

    /// Characters of a bare word (identifiers, numbers, names such as `blocks.0.attn`).
    static func isWordScalar(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "+", "-": return true
        default: return false
        }
    }

    static func isPunct(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "(", ")", "[", "]", ",", "=", ":", "{", "}": return true
        default: return false
        }
    }

    /// `text` without leading and trailing whitespace.
    static func trim(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
              let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[first...last])
        return String(out)
    }

    /// The tokens of one line, ending with an `.end` token.
    static func tokenize(_ line: String) throws -> [IRToken] {
        let s = Array(line.unicodeScalars)
        var tokens: [IRToken] = []
        var i = 0
        func text(_ range: Range<Int>) -> String {
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s[range])
            return String(v)
        }
        while i < s.count {
            let c = s[i]
            let start = i
            if isSpace(c) {
                i += 1
            } else if c == "#" {
                let raw = text((i + 1)..<s.count)
                tokens.append(IRToken(kind: .comment, text: "#" + raw, value: raw, column: start + 1))
                i = s.count
            } else if c == "\"" {
                let (value, end) = try readString(s, from: i)
                i = end
                tokens.append(IRToken(kind: .string, text: text(start..<i), value: value, column: start + 1))
            } else if c == "%" {
                i += 1
                while i < s.count, ("0"..."9").contains(s[i]) { i += 1 }
                if i == start + 1 {
                    var j = i
                    while j < s.count, isWordScalar(s[j]) { j += 1 }
                    throw IRError("malformed value reference '\(text(start..<j))' (expected %N)")
                }
                tokens.append(IRToken(kind: .percent, text: text(start..<i), value: text((start + 1)..<i),
                                      column: start + 1))
            } else if isPunct(c) {
                i += 1
                tokens.append(IRToken(kind: .punct, text: String(Character(c)), value: String(Character(c)),
                                      column: start + 1))
            } else if isWordScalar(c) {
                while i < s.count, isWordScalar(s[i]) { i += 1 }
                let word = text(start..<i)
                tokens.append(IRToken(kind: .word, text: word, value: word, column: start + 1))
            } else {
                throw IRError("unexpected character '\(Character(c))' at column \(start + 1)")
            }
        }
        tokens.append(IRToken(kind: .end, text: "", value: "", column: s.count + 1))
        return tokens
    }

    /// Reads a string literal starting at the opening quote `s[start]`; returns its value and the
    /// index after the closing quote.
    static func readString(_ s: [Unicode.Scalar], from start: Int) throws -> (String, Int) {
        var value = String.UnicodeScalarView()
        var i = start + 1
        while i < s.count {
            let c = s[i]
            if c == "\"" { return (String(value), i + 1) }
            if c == "\\" {
                guard i + 1 < s.count else { break }
                switch s[i + 1] {
                case "\"": value.append("\"")
                case "\\": value.append("\\")
                case "n": value.append("\n")
                case "r": value.append("\r")
                case "t": value.append("\t")
                default: throw IRError("unknown escape '\\\(Character(s[i + 1]))' in string literal")
                }
                i += 2
            } else {
                value.append(c)
                i += 1
            }
        }
        var raw = String.UnicodeScalarView()
        raw.append(contentsOf: s[start...])
        throw IRError("unterminated string literal '\(String(raw))'")
    }
}

/// Reads the tokens of one line in order.
struct IRTokenCursor {
    var tokens: [IRToken]
    var index = 0

    init(_ tokens: [IRToken]) { self.tokens = tokens }

    var peek: IRToken { tokens[index] }

    mutating func next() -> IRToken {
        let t = tokens[index]
        if t.kind != .end { index += 1 }
        return t
    }

    func isPunct(_ p: String) -> Bool { peek.kind == .punct && peek.text == p }

    /// Consumes `p` if it comes next.
    mutating func accept(_ p: String) -> Bool {
        guard isPunct(p) else { return false }
        index += 1
        return true
    }

    mutating func expect(_ p: String, _ context: String) throws {
        guard accept(p) else { throw IRError("expected '\(p)' \(context), found \(peek.quoted)") }
    }

    mutating func expect(_ kind: IRToken.Kind, _ what: String) throws -> IRToken {
        guard peek.kind == kind else { throw IRError("expected \(what), found \(peek.quoted)") }
        return next()
    }

    mutating func expectEnd() throws {
        guard peek.kind == .end else { throw IRError("unexpected \(peek.quoted) at end of line") }
    }
}

// MARK: attributes and op names (used by IRParser)

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

// MARK: ops

/// An op named by its mnemonic, before its attributes are read.
enum IROpKind {
    case input, parameter(trainable: Bool), constant, iota, unary(UnaryFunction), affine
    case binary(BinaryFunction), matmul, reduce(ReduceFunction), softmax, layerNorm, rmsNorm
    case reshape, permute, slice, concat, broadcast, gather, scatterAdd, patchify, unpatchify, rotatePairs, cast
    case stopGradient
    case fusedElementwise, linear, normModulate, attention, tokenAttention, tokenAttentionBackward, normBackward
    case sumSquares, adamw, allReduce

    init?(_ mnemonic: String) {
        if let f = UnaryFunction(rawValue: mnemonic) { self = .unary(f); return }
        if let f = BinaryFunction(rawValue: mnemonic) { self = .binary(f); return }
        if mnemonic.hasPrefix("reduce_"), let f = ReduceFunction(rawValue: String(mnemonic.dropFirst(7))) {
            self = .reduce(f)
            return
        }
        switch mnemonic {
        case "input": self = .input
        case "param": self = .parameter(trainable: true)
        case "buffer": self = .parameter(trainable: false)
        case "constant": self = .constant
        case "iota": self = .iota
        case "affine": self = .affine
        case "matmul": self = .matmul
        case "softmax": self = .softmax
        case "layer_norm": self = .layerNorm
        case "rms_norm": self = .rmsNorm
        case "reshape": self = .reshape
        case "permute": self = .permute
        case "slice": self = .slice
        case "concat": self = .concat
        case "broadcast": self = .broadcast
        case "gather": self = .gather
        case "scatter_add": self = .scatterAdd
        case "patchify": self = .patchify
        case "unpatchify": self = .unpatchify
        case "rotate_pairs": self = .rotatePairs
        case "cast": self = .cast
        case "stop_gradient": self = .stopGradient
        case "fused_elementwise": self = .fusedElementwise
        case "linear": self = .linear
        case "norm_modulate": self = .normModulate
        case "attention": self = .attention
        case "token_attention": self = .tokenAttention
        case "token_attention_backward": self = .tokenAttentionBackward
        case "norm_backward": self = .normBackward
        case "sum_squares": self = .sumSquares
        case "adamw": self = .adamw
        case "allreduce": self = .allReduce
        default: return nil
        }
    }

    func makeOp(name: String?, value: Float?, operandCount: Int, attributes a: inout IRAttributes) throws -> Op {
        switch self {
        case .fusedElementwise:
            let windows = a.values["windows"] != nil ? try a.string("windows") : nil
            return .fused(.elementwise(try ElementwiseProgram.parse(try a.string("program"), windows: windows, inputCount: operandCount)))
        case .linear:
            guard a.values["act"] != nil else { return .fused(.linear(activation: nil)) }
            let value = try a.take("act")
            guard case .word(let t) = value, let f = UnaryFunction(rawValue: t.text) else {
                throw IRError("bad attribute '\(a.spelled("act", value))': expected a unary function")
            }
            return .fused(.linear(activation: f))
        case .normModulate: return .fused(.normModulate(eps: try a.float("eps"), rms: try a.flag("rms")))
        case .attention: return .fused(.attention(scale: try a.float("scale")))
        case .tokenAttention: return .fused(.tokenAttention(heads: try a.int("heads"), scale: try a.float("scale")))
        case .normBackward: return .fused(.normBackward(eps: try a.float("eps"), rms: try a.flag("rms")))
        case .tokenAttentionBackward:
            return .fused(.tokenAttentionBackward(heads: try a.int("heads"), scale: try a.float("scale")))
        case .sumSquares: return .fused(.sumSquares)
        case .allReduce: return .fused(.allReduce)
        case .adamw:
            let update = AdamWUpdate(segments: try a.int("segments"), beta1: try a.float("beta1"), beta2: try a.float("beta2"),
                                     eps: try a.float("eps"), clip: try a.flag("clip"), decay: try a.flag("decay"),
                                     ema: try a.flag("ema"))
            guard update.segments > 0, update.operandCount == operandCount else {
                throw IRError("adamw with segments=\(update.segments) takes \(update.operandCount) operands, got \(operandCount)")
            }
            return .fused(.adamw(update))
        case .input: return .input(name: name!)
        case .parameter(let trainable):
            return .parameter(name: name!, initializer: try a.initializer("init"), trainable: trainable)
        case .constant: return .constant(value: value!)
        case .iota: return .iota(axis: try a.int("axis"))
        case .unary(let f): return .unary(f)
        case .affine: return .affine(scale: try a.float("scale"), shift: try a.float("shift"))
        case .binary(let f): return .binary(f)
        case .matmul: return .matmul(transposeA: try a.flag("transpose_a"), transposeB: try a.flag("transpose_b"))
        case .reduce(let f): return .reduce(f, axes: try a.ints("axes"), keepDims: try a.flag("keep_dims"))
        case .softmax: return .softmax
        case .layerNorm: return .layerNorm(eps: try a.float("eps"))
        case .rmsNorm: return .rmsNorm(eps: try a.float("eps"))
        case .reshape: return .reshape(shape: try a.ints("shape"))
        case .permute: return .permute(perm: try a.ints("perm"))
        case .slice: return .slice(axis: try a.int("axis"), start: try a.int("start"), end: try a.int("end"))
        case .concat: return .concat(axis: try a.int("axis"))
        case .broadcast: return .broadcast(shape: try a.ints("shape"))
        case .gather: return .gather
        case .scatterAdd: return .scatterAdd(rows: try a.int("rows"))
        case .patchify: return .patchify(patch: try a.int("patch"))
        case .unpatchify:
            return .unpatchify(patch: try a.int("patch"), gridH: try a.int("grid_h"), gridW: try a.int("grid_w"))
        case .rotatePairs: return .rotatePairs
        case .cast: return .cast(to: try a.dtype("to"))
        case .stopGradient: return .stopGradient
        }
    }
}
