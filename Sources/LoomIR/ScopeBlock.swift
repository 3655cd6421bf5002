/// A module scope that the model's author marks as one block of the model, as data for the
/// compiler: profiles attribute nodes by it, rematerialisation recomputes repeated blocks, folded
/// dumps fold them. The compiler knows no zoo scope names; it reads these annotations.
///
/// In IR text: `block "blocks.3" = "blocks.3" repeated` (scope, then label) before the nodes.
public struct ScopeBlock: Equatable, Sendable {
    /// The scope prefix: a node belongs when its scope is this or starts with it and a dot.
    public var scope: String
    /// The block label in profiles (several scopes may share one, e.g. the embedders).
    public var block: String
    /// One of the repeated transformer blocks (candidates for rematerialisation).
    public var repeated: Bool

    public init(scope: String, block: String, repeated: Bool = false) {
        self.scope = scope
        self.block = block
        self.repeated = repeated
    }

    /// Whether `scope` (a node's scope or a parameter key) lies inside this block.
    public func contains(_ scope: String) -> Bool {
        scope == self.scope || (scope.hasPrefix(self.scope) && scope.dropFirst(self.scope.count).first == ".")
    }
}

extension Graph {
    /// The annotated block of a node scope or parameter key: the longest annotated prefix.
    public func scopeBlock(of scope: String) -> ScopeBlock? {
        scopeBlocks.filter { $0.contains(scope) }.max { $0.scope.count < $1.scope.count }
    }

    /// The repeated blocks' labels, in annotation (model) order.
    public var repeatedBlocks: [String] {
        var seen = Set<String>()
        return scopeBlocks.filter { $0.repeated && seen.insert($0.block).inserted }.map(\.block)
    }
}

extension GraphBuilder {
    /// Marks `scope` as (part of) block `block`; a scope annotated twice keeps its first label.
    public func annotate(scope: String, block: String, repeated: Bool = false) {
        appendScopeBlock(ScopeBlock(scope: scope, block: block, repeated: repeated))
    }
}
