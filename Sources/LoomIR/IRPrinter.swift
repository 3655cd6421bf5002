/// Prints a `Graph` as Loom's textual IR: one instruction per line, with its type and scope.
///
/// ```
/// graph sit_forward {
///   %0 = input "x" : f32[3,4,8,8]
///   %1 = param "x_embedder.proj.weight" init=xavier_uniform(16,64) : f32[64,16]  # x_embedder.proj
///   %2 = matmul(%0, %1) transpose_b : f32[48,64]  # blocks.0.attn.qkv
///   %3 = gelu_tanh(%2) : f32[48,64]  # blocks.0.mlp <- %2
///   return out = %3
/// }
/// ```
///
/// `IRParser.parse` reads this text back; `parse(print(g)) == g` for every verified graph
/// (NaN constants aside, since NaN never compares equal).
public enum IRPrinter {
    /// The parseable text of `graph`, ending with `"}\n"`.
    public static func print(_ graph: Graph) -> String {
        var out = header(graph)
        for remark in graph.remarks { out += "  // " + remark + "\n" }
        for annotation in graph.scopeBlocks { out += "  " + blockLine(annotation) + "\n" }
        for node in graph.nodes { out += "  " + line(node) + "\n" }
        out += footer(graph)
        return out
    }

    /// Folded view for humans: consecutive runs of structurally identical repeated blocks (as
    /// annotated, `ScopeBlock.repeated`) are
    /// printed once, followed by a header line such as
    /// `  // blocks.1 … blocks.3: ×3 identical to blocks.0 (12 nodes each)` instead of the repeats.
    /// Not parseable; documentation only.
    public static func printFolded(_ graph: Graph) -> String {
        var out = header(graph)
        for annotation in graph.scopeBlocks { out += "  " + blockLine(annotation) + "\n" }
        let segments = blockSegments(graph)
        let labels = graph.scopeBlocks.filter(\.repeated).map(\.block)
        var s = 0
        while s < segments.count {
            let ref = segments[s]
            for id in ref.range { out += "  " + line(graph.nodes[id]) + "\n" }
            s += 1
            guard let refBlock = ref.block else { continue }
            var folded = 0
            while s < segments.count, let block = segments[s].block, block == refBlock + folded + 1,
                  sameStructure(graph, ref, segments[s]) {
                folded += 1
                s += 1
            }
            if folded > 0 {
                let first = labels[refBlock + 1]
                let span = folded == 1 ? first : "\(first) … \(labels[refBlock + folded])"
                out += "  // \(span): ×\(folded) identical to \(labels[refBlock]) (\(ref.range.count) nodes each)\n"
            }
        }
        out += footer(graph)
        return out
    }

    // MARK: lines

    static func header(_ graph: Graph) -> String { "graph \(name(graph.name)) {\n" }

    /// `block "<scope>" = "<label>" [repeated]`.
    static func blockLine(_ annotation: ScopeBlock) -> String {
        "block \(quote(annotation.scope)) = \(quote(annotation.block))" + (annotation.repeated ? " repeated" : "")
    }

    static func footer(_ graph: Graph) -> String {
        var out = "  return"
        if !graph.outputs.isEmpty {
            out += " " + graph.outputs.map { "\(name($0.name)) = %\($0.node)" }.joined(separator: ", ")
        }
        return out + "\n}\n"
    }

    /// One instruction without indentation, e.g. `%5 = matmul(%0, %1) transpose_b : f32[48,64]  # blocks.0`.
    public static func line(_ node: Node) -> String {
        var s = "%\(node.id) = \(node.op.mnemonic)"
        switch node.op {
        case .input(let name), .parameter(let name, _, _):
            s += " " + quote(name)
        case .constant(let value):
            s += " " + float(value)
        default:
            break
        }
        if !node.inputs.isEmpty || node.op.arity != 0 {
            s += "(" + node.inputs.map { "%\($0)" }.joined(separator: ", ") + ")"
        }
        for attribute in attributes(node.op) { s += " " + attribute }
        if node.compute != .f32 { s += " \(ComputePrecision.attributeKey)=\(node.compute.rawValue)" }
        s += " : \(node.type)"
        if !node.scope.isEmpty || node.origin != nil {
            s += "  #"
            if !node.scope.isEmpty { s += " " + scope(node.scope) }
            if let origin = node.origin { s += " <- %\(origin)" }
        }
        return s
    }

    /// The `key=value` attributes and bare flags of `op`, in print order.
    static func attributes(_ op: Op) -> [String] {
        switch op {
        case .input, .constant, .unary, .binary, .softmax, .gather, .rotatePairs, .stopGradient:
            return []
        case .parameter(_, let initializer, _):
            return ["init=" + self.initializer(initializer)]
        case .iota(let axis):
            return ["axis=\(axis)"]
        case .affine(let scale, let shift):
            return ["scale=" + float(scale), "shift=" + float(shift)]
        case .matmul(let ta, let tb):
            return (ta ? ["transpose_a"] : []) + (tb ? ["transpose_b"] : [])
        case .reduce(_, let axes, let keepDims):
            return ["axes=" + ints(axes)] + (keepDims ? ["keep_dims"] : [])
        case .layerNorm(let eps), .rmsNorm(let eps):
            return ["eps=" + float(eps)]
        case .reshape(let shape), .broadcast(let shape):
            return ["shape=" + ints(shape)]
        case .permute(let perm):
            return ["perm=" + ints(perm)]
        case .slice(let axis, let start, let end):
            return ["axis=\(axis)", "start=\(start)", "end=\(end)"]
        case .concat(let axis):
            return ["axis=\(axis)"]
        case .scatterAdd(let rows):
            return ["rows=\(rows)"]
        case .patchify(let patch):
            return ["patch=\(patch)"]
        case .conv2d(let stride, let padding):
            return ["stride=\(stride)", "pad=" + ints(padding)]
        case .unpatchify(let patch, let gridH, let gridW):
            return ["patch=\(patch)", "grid_h=\(gridH)", "grid_w=\(gridW)"]
        case .cast(let dtype):
            return ["to=" + dtype.rawValue]
        case .fused(let kernel):
            switch kernel {
            case .elementwise(let program):
                return ["program=" + quote(program.text)] + (program.windows.isEmpty ? [] : ["windows=" + quote(program.windowsText)])
            case .linear(let activation): return activation.map { ["act=" + $0.rawValue] } ?? []
            case .normModulate(let eps, let rms), .normBackward(let eps, let rms): return ["eps=" + float(eps)] + (rms ? ["rms"] : [])
            case .attention(let scale): return ["scale=" + float(scale)]
            case .tokenAttention(let heads, let scale), .tokenAttentionBackward(let heads, let scale):
                return ["heads=\(heads)", "scale=" + float(scale)]
            case .sumSquares, .allReduce: return []
            case .adamw(let u):
                return ["segments=\(u.segments)", "beta1=" + float(u.beta1), "beta2=" + float(u.beta2), "eps=" + float(u.eps)]
                    + (u.clip ? ["clip"] : []) + (u.decay ? ["decay"] : []) + (u.ema ? ["ema"] : [])
            }
        }
    }

    static func initializer(_ initializer: Initializer) -> String {
        switch initializer {
        case .zeros: return "zeros"
        case .ones: return "ones"
        case .normal(let std): return "normal(\(float(std)))"
        case .xavierUniform(let fanIn, let fanOut): return "xavier_uniform(\(fanIn),\(fanOut))"
        case .sinCos2D(let h, let w): return "sincos_2d(\(h),\(w))"
        case .ropeCos(let h, let w): return "rope_cos(\(h),\(w))"
        case .ropeSin(let h, let w): return "rope_sin(\(h),\(w))"
        }
    }

    // MARK: literals

    /// Shortest round-trip spelling (`0.5`, `-0.0`, `1e-06`, `inf`, `nan`).
    static func float(_ value: Float) -> String { value.description }

    static func ints(_ values: [Int]) -> String { "[" + values.map(String.init).joined(separator: ",") + "]" }

    /// A double-quoted string with `\"`, `\\`, `\n`, `\r` and `\t` escaped.
    static func quote(_ text: String) -> String {
        var s = "\""
        for c in text.unicodeScalars {
            switch c {
            case "\"": s += "\\\""
            case "\\": s += "\\\\"
            case "\n": s += "\\n"
            case "\r": s += "\\r"
            case "\t": s += "\\t"
            default: s.unicodeScalars.append(c)
            }
        }
        return s + "\""
    }

    /// A graph or output name: bare when it is a single lexer word, quoted otherwise.
    static func name(_ text: String) -> String {
        !text.isEmpty && text.unicodeScalars.allSatisfy(IRLexer.isWordScalar) ? text : quote(text)
    }

    /// A scope comment: bare unless it would not read back verbatim.
    static func scope(_ text: String) -> String {
        let plain = IRLexer.trim(text) == text && !text.hasPrefix("\"") && !text.contains("<-")
            && !text.unicodeScalars.contains { $0 == "\n" || $0 == "\r" }
        return plain ? text : quote(text)
    }

    // MARK: folding

    struct Segment {
        var range: Range<Int>
        /// N when every node of the segment lies in the N-th repeated block.
        var block: Int?
    }

    /// The index (among `repeated`, the graph's repeated-block scopes) of the block `scope` lies in.
    static func blockIndex(_ scope: String, _ repeated: [ScopeBlock]) -> Int? {
        repeated.firstIndex { $0.contains(scope) }
    }

    /// Splits the nodes into maximal runs in the same repeated block; other nodes stand alone.
    static func blockSegments(_ graph: Graph) -> [Segment] {
        let repeated = graph.scopeBlocks.filter(\.repeated)
        var segments: [Segment] = []
        var i = 0
        while i < graph.nodes.count {
            let block = blockIndex(graph.nodes[i].scope, repeated)
            var j = i + 1
            if block != nil {
                while j < graph.nodes.count, blockIndex(graph.nodes[j].scope, repeated) == block { j += 1 }
            }
            segments.append(Segment(range: i..<j, block: block))
            i = j
        }
        return segments
    }

    /// Replaces the scope prefix of repeated block `n` in a scope or parameter key by block `m`'s.
    static func renumber(_ text: String, from n: Int, to m: Int, _ repeated: [ScopeBlock]) -> String {
        guard repeated[n].contains(text) else { return text }
        return repeated[m].scope + text.dropFirst(repeated[n].scope.count)
    }

    /// Whether `other` repeats `ref` node for node: same ops, attributes and types, scopes and
    /// parameter keys equal up to the block number, operands inside the segment at the same
    /// offsets. An operand outside the segment may differ (the previous block's output instead of
    /// the embedding) as long as it does so consistently: each outside value of `ref` stands for one
    /// outside value of `other`, of the same type.
    static func sameStructure(_ graph: Graph, _ ref: Segment, _ other: Segment) -> Bool {
        guard let n = ref.block, let m = other.block, ref.range.count == other.range.count else { return false }
        let repeated = graph.scopeBlocks.filter(\.repeated)
        let delta = other.range.lowerBound - ref.range.lowerBound
        var outside: [Int: Int] = [:]
        var outsideImage: [Int: Int] = [:]
        func sameRef(_ a: Int, _ b: Int) -> Bool {
            if ref.range.contains(a) { return b == a + delta }
            guard !other.range.contains(b), a >= 0, b >= 0, a < graph.nodes.count, b < graph.nodes.count,
                  graph.nodes[a].type == graph.nodes[b].type else { return false }
            if outside[a] == nil, outsideImage[b] == nil {
                outside[a] = b
                outsideImage[b] = a
            }
            return outside[a] == b && outsideImage[b] == a
        }
        for (ia, ib) in zip(ref.range, other.range) {
            let a = graph.nodes[ia], b = graph.nodes[ib]
            var op = a.op
            if case .parameter(let name, let initializer, let trainable) = op {
                op = .parameter(name: renumber(name, from: n, to: m, repeated), initializer: initializer, trainable: trainable)
            }
            guard op == b.op, a.type == b.type, renumber(a.scope, from: n, to: m, repeated) == b.scope,
                  a.inputs.count == b.inputs.count, zip(a.inputs, b.inputs).allSatisfy(sameRef) else { return false }
            switch (a.origin, b.origin) {
            case (nil, nil): break
            case let (x?, y?): guard sameRef(x, y) else { return false }
            default: return false
            }
        }
        return true
    }
}
