/// The operand precision of a node's GEMMs (accumulation is always fp32). `bf16` is chosen by the
/// compiler's precision pass for matrix products under `--precision bf16`; the node's value stays
/// fp32. Printed as the attribute `compute=bf16`.
public enum ComputePrecision: String, CaseIterable, Sendable, Equatable {
    case f32, bf16

    /// The IR attribute key.
    public static let attributeKey = "compute"
}

/// The precision a whole compile asks for (`--precision fp32|bf16`).
public enum PrecisionPolicy: String, CaseIterable, Sendable, Equatable, Codable {
    /// Everything in fp32.
    case fp32
    /// GEMM operands in bf16, accumulation and everything else (master weights, optimizer state,
    /// norms, softmax statistics, the loss) in fp32.
    case bf16

    /// The flag's spelling of the allowed values, for help and errors.
    public static let spelled = allCases.map(\.rawValue).joined(separator: "|")
}
