import LoomIR

/// The kinds of Loom's closed op set, as the coverage tests name them (the op's IR mnemonic, so a
/// parameter is `param` when trainable and `buffer` otherwise).
public enum OpKinds {
    /// The kind of `op`. The switch is exhaustive on purpose and lists every case of `Op`: adding a
    /// case fails to compile here until it is placed, and then the coverage lists of the IR-text and
    /// gradient tests must follow.
    public static func kind(_ op: Op) -> String {
        switch op {
        case .input, .parameter, .constant, .iota, .unary, .affine, .binary, .matmul, .reduce, .softmax,
             .layerNorm, .rmsNorm, .reshape, .permute, .slice, .concat, .broadcast, .gather, .scatterAdd,
             .patchify, .unpatchify, .rotatePairs, .conv2d, .cast, .stopGradient, .fused:
            return op.mnemonic
        }
    }
}
