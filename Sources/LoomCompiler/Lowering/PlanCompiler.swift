import LoomIR
import LoomRuntime

/// The compiler's front door: passes (simplify, fusion) then lowering to a `Plan`.
public enum PlanCompiler {
    /// Compiles `graph` with `passes` (the standard pipeline by default).
    public static func compile(_ graph: Graph, passes: PassManager = .standard()) throws -> Plan {
        try PlanLowering.lower(try passes.run(graph))
    }

    /// Compiles `graph` with the standard pipeline under a precision policy.
    public static func compile(_ graph: Graph, precision: PrecisionPolicy) throws -> Plan {
        try compile(graph, passes: .standard(precision: precision))
    }
}
