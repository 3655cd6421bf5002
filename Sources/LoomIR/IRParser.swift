/// Reads the textual IR written by `IRPrinter.print` back into a `Graph`.
///
/// Every node keeps the type declared after its `:`; nothing is inferred here. The finished graph
/// goes through `Verifier.verify`, which checks each declared type against the op rules. Errors are
/// `IRError`s whose message starts with `source:line:` and names the offending token.
public enum IRParser {
    /// Most operands one node may list (the widest concatenations Loom writes have a few hundred).
    public static let maxOperands = 65536

    public static func parse(_ text: String, source: String = "<string>") throws -> Graph {
        var parser = Parser(source: source)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() {
            parser.lineNumber = index + 1
            do {
                try parser.parseLine(String(line))
            } catch let error as IRError {
                throw parser.located(error.message)
            }
        }
        return try parser.finish(lastLine: max(lines.count, 1))
    }
}

private struct Parser {
    enum State { case header, body, afterReturn, done }

    let source: String
    var lineNumber = 0
    var state = State.header
    var graph = Graph(name: "")
    /// Source line of each node, and of the `return` line, for error messages.
    var nodeLines: [Int] = []
    var returnLine: Int?
    /// Origins are checked once every node is known: (node id, origin, line, token).
    var origins: [(node: Int, origin: Int, line: Int, token: String)] = []

    init(source: String) { self.source = source }

    func located(_ message: String, line: Int? = nil) -> IRError {
        IRError("\(source):\(line ?? lineNumber): \(message)")
    }

    mutating func parseLine(_ raw: String) throws {
        let trimmed = IRLexer.trim(raw)
        if trimmed.isEmpty || trimmed.hasPrefix("//") { return }
        var cursor = IRTokenCursor(try IRLexer.tokenize(raw))
        let first = cursor.peek
        switch state {
        case .header:
            guard first.kind == .word, first.text == "graph" else {
                throw IRError("expected 'graph <name> {', found \(first.quoted)")
            }
            _ = cursor.next()
            graph.name = try parseName(&cursor, "a graph name")
            try cursor.expect("{", "after the graph name")
            try cursor.expectEnd()
            state = .body
        case .body, .afterReturn:
            if first.kind == .punct, first.text == "}" {
                _ = cursor.next()
                try cursor.expectEnd()
                state = .done
            } else if first.kind == .word, first.text == "return" {
                guard state == .body else { throw IRError("second 'return' line") }
                _ = cursor.next()
                try parseReturn(&cursor)
                state = .afterReturn
            } else if first.kind == .word, first.text == "block" {
                guard state == .body, graph.nodes.isEmpty else { throw IRError("'block' annotations come before the instructions") }
                _ = cursor.next()
                try parseBlock(&cursor)
            } else if first.kind == .percent {
                guard state == .body else { throw IRError("instruction \(first.quoted) after 'return'") }
                try parseNode(&cursor)
            } else {
                throw IRError("expected an instruction '%N = ...', 'return' or '}', found \(first.quoted)")
            }
        case .done:
            throw IRError("unexpected \(first.quoted) after the closing '}'")
        }
    }

    mutating func finish(lastLine: Int) throws -> Graph {
        guard state == .done else {
            throw located(state == .header ? "expected 'graph <name> {'" : "missing closing '}'", line: lastLine)
        }
        for o in origins where o.origin >= graph.nodes.count {
            throw located("origin \(o.token) of %\(o.node) is not defined", line: o.line)
        }
        graph.refreshRoles()
        do {
            try Verifier.verify(graph)
        } catch let error as IRError {
            throw located(error.message, line: verifierLine(error.message))
        }
        return graph
    }

    /// The line a verifier message is about: the node it names, or the `return` line.
    func verifierLine(_ message: String) -> Int {
        if message.hasPrefix("node %") {
            let digits = message.dropFirst("node %".count).prefix { $0.isASCII && $0.isNumber }
            if let id = Int(digits), id < nodeLines.count { return nodeLines[id] }
        }
        if message.hasPrefix("output "), let returnLine { return returnLine }
        return nodeLines.first ?? 1
    }

    // MARK: lines

    func parseName(_ cursor: inout IRTokenCursor, _ what: String) throws -> String {
        let t = cursor.peek
        guard t.kind == .word || t.kind == .string else { throw IRError("expected \(what), found \(t.quoted)") }
        return cursor.next().value
    }

    func parseValueRef(_ cursor: inout IRTokenCursor, _ what: String) throws -> (Int, IRToken) {
        let t = try cursor.expect(.percent, what)
        guard let id = Int(t.value) else { throw IRError("value number \(t.quoted) is too large") }
        return (id, t)
    }

    /// `block "<scope>" = "<label>" [repeated]`.
    mutating func parseBlock(_ cursor: inout IRTokenCursor) throws {
        let scope = try parseName(&cursor, "a block scope")
        try cursor.expect("=", "after the block scope")
        let label = try parseName(&cursor, "a block label")
        var repeated = false
        if cursor.peek.kind == .word, cursor.peek.text == "repeated" {
            _ = cursor.next()
            repeated = true
        }
        try cursor.expectEnd()
        guard !graph.scopeBlocks.contains(where: { $0.scope == scope }) else { throw IRError("block \(scope) annotated twice") }
        graph.scopeBlocks.append(ScopeBlock(scope: scope, block: label, repeated: repeated))
    }

    mutating func parseReturn(_ cursor: inout IRTokenCursor) throws {
        returnLine = lineNumber
        if cursor.peek.kind == .end { return }
        repeat {
            let name = try parseName(&cursor, "an output name")
            try cursor.expect("=", "after output name '\(name)'")
            let (id, token) = try parseValueRef(&cursor, "a value '%N' for output '\(name)'")
            guard id < graph.nodes.count else { throw IRError("undefined value \(token.quoted) in output '\(name)'") }
            graph.outputs.append(GraphOutput(name: name, node: id))
        } while cursor.accept(",")
        try cursor.expectEnd()
    }

    mutating func parseNode(_ cursor: inout IRTokenCursor) throws {
        let (id, idToken) = try parseValueRef(&cursor, "'%N'")
        guard id == graph.nodes.count else {
            throw IRError("expected %\(graph.nodes.count) (ids are node positions), found \(idToken.quoted)")
        }
        try cursor.expect("=", "after \(idToken.text)")
        let mnemonic = try cursor.expect(.word, "an op name")
        guard let kind = IROpKind(mnemonic.text) else { throw IRError("unknown op \(mnemonic.quoted)") }

        var name: String?
        var value: Float?
        switch kind {
        case .input, .parameter:
            name = try cursor.expect(.string, "a quoted name after \(mnemonic.quoted)").value
        case .constant:
            let t = try cursor.expect(.word, "a value after 'constant'")
            guard let v = Float(t.text) else { throw IRError("bad constant value \(t.quoted)") }
            value = v
        default:
            break
        }

        var inputs: [Int] = []
        if cursor.accept("(") {
            if !cursor.accept(")") {
                repeat {
                    let (operand, token) = try parseValueRef(&cursor, "an operand '%N'")
                    guard operand < id else { throw IRError("undefined operand \(token.quoted)") }
                    guard inputs.count < IRParser.maxOperands else {
                        throw IRError("more than \(IRParser.maxOperands) operands on one node")
                    }
                    inputs.append(operand)
                } while cursor.accept(",")
                try cursor.expect(")", "after the operands")
            }
        }

        var attributes = IRAttributes(op: mnemonic.text)
        while cursor.peek.kind == .word {
            let key = cursor.next()
            if cursor.accept("=") {
                try attributes.add(key, try parseAttributeValue(&cursor, key))
            } else {
                try attributes.add(key, .flag)
            }
        }
        try cursor.expect(":", "before the type")
        let type = try parseType(&cursor)

        var scope = ""
        var origin: Int?
        if cursor.peek.kind == .comment {
            let comment = cursor.next().value
            (scope, origin) = try parseScopeComment(comment, node: id)
        }
        try cursor.expectEnd()

        let op = try kind.makeOp(name: name, value: value, operandCount: inputs.count, attributes: &attributes)
        let compute = try attributes.computePrecision()
        try attributes.checkAllUsed()
        graph.nodes.append(Node(id: id, op: op, inputs: inputs, type: type, scope: scope,
                                role: Graph.defaultRole(for: op), origin: origin, compute: compute))
        nodeLines.append(lineNumber)
    }

    func parseAttributeValue(_ cursor: inout IRTokenCursor, _ key: IRToken) throws -> IRAttributeValue {
        if cursor.peek.kind == .string { return .string(cursor.next()) }
        if cursor.accept("[") {
            var values: [Int] = []
            if !cursor.accept("]") {
                repeat {
                    let t = try cursor.expect(.word, "an integer in '\(key.text)=[...]'")
                    guard let v = Int(t.text) else { throw IRError("bad integer \(t.quoted) in attribute '\(key.text)'") }
                    values.append(v)
                } while cursor.accept(",")
                try cursor.expect("]", "to close '\(key.text)=[...]'")
            }
            return .list(values)
        }
        let t = try cursor.expect(.word, "a value for attribute '\(key.text)'")
        guard cursor.accept("(") else { return .word(t) }
        var args: [IRToken] = []
        if !cursor.accept(")") {
            repeat {
                args.append(try cursor.expect(.word, "an argument of '\(t.text)(...)'"))
            } while cursor.accept(",")
            try cursor.expect(")", "to close '\(t.text)(...)'")
        }
        return .call(t, args)
    }

    func parseType(_ cursor: inout IRTokenCursor) throws -> TensorType {
        let t = try cursor.expect(.word, "a type such as 'f32[2,3]'")
        guard let dtype = DType(rawValue: t.text) else {
            throw IRError("bad type annotation: unknown element type \(t.quoted) (expected f32, i32 or i64)")
        }
        guard cursor.accept("[") else {
            throw IRError("bad type annotation: expected '[' after \(t.quoted), found \(cursor.peek.quoted)")
        }
        var shape: [Int] = []
        if !cursor.accept("]") {
            repeat {
                let d = cursor.peek
                guard d.kind == .word, let v = Int(d.text) else {
                    throw IRError("bad type annotation: expected a dimension, found \(d.quoted)")
                }
                _ = cursor.next()
                shape.append(v)
            } while cursor.accept(",")
            guard cursor.accept("]") else {
                throw IRError("bad type annotation: expected ']', found \(cursor.peek.quoted)")
            }
        }
        let type = TensorType(dtype, shape)
        do {
            try SizeLimits.check(type, "bad type annotation")
        } catch let error as IRError {
            throw IRError(error.message)
        }
        return type
    }

    /// `# scope`, `# scope <- %K`, `# <- %K`, or `# "quoted scope" <- %K`.
    mutating func parseScopeComment(_ comment: String, node: Int) throws -> (String, Int?) {
        var rest = IRLexer.trim(comment)
        var scope: String?
        if rest.hasPrefix("\"") {
            let scalars = Array(rest.unicodeScalars)
            let (value, end) = try IRLexer.readString(scalars, from: 0)
            scope = value
            var tail = String.UnicodeScalarView()
            tail.append(contentsOf: scalars[end...])
            rest = IRLexer.trim(String(tail))
        }
        var originText: String?
        if let arrow = rest.firstRange(of: "<-") {
            originText = IRLexer.trim(String(rest[arrow.upperBound...]))
            rest = IRLexer.trim(String(rest[..<arrow.lowerBound]))
        }
        if scope != nil, !rest.isEmpty { throw IRError("unexpected '\(rest)' after the quoted scope") }
        var origin: Int?
        if let originText {
            guard originText.hasPrefix("%"), let value = Int(originText.dropFirst()), value >= 0 else {
                throw IRError("bad origin '\(originText)' (expected '<- %N')")
            }
            origin = value
            origins.append((node, value, lineNumber, "'\(originText)'"))
        }
        return (scope ?? rest, origin)
    }
}
