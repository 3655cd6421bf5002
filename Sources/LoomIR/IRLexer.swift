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
