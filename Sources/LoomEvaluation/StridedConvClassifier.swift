import LoomGraphs
import LoomIR

/// The families of feature classifier. Two feature spaces of different architectures let a claim
/// be checked where both agree.
public enum ClassifierArchitecture: String, Codable, Sendable, CaseIterable {
    /// Per-patch filters, then dense layers over the whole flattened layout (the default).
    case patchMLP = "patch-mlp"
    /// A convolutional network: `depth + 1` stages of 2×2 convolutions with stride 2 (each a
    /// patchify and a shared linear map: translation-equivariant weights at every scale), then a
    /// global mean pool — no dense layer ever sees the image layout.
    case stridedConv = "strided-conv"
}

extension FeatureClassifier {
    /// `images [N, C, S, S]` → stages s = 0…depth: patchify 2 → `conv<s>` C_s·4 → W·2ˢ with GELU →
    /// back to `[N, W·2ˢ, S/2ˢ⁺¹, S/2ˢ⁺¹]` → mean over the grid `[N, W·2^depth]` → `feature.fc` F with
    /// GELU (the feature vector) → `head` F → classes.
    static func stridedConvForward(_ b: GraphBuilder, images: Tensor, config c: FeatureClassifierConfig)
        -> (features: Tensor, logits: Tensor) {
        let n = images.shape[0]
        var h = images                                                       // [N, C, S, S]
        var side = c.imageSize
        for stage in 0...c.depth {
            let width = c.patchWidth << stage
            side /= 2
            let y = b.scoped("conv\(stage)") { linear(b, "fc", h.patchify(2), width).geluTanh() }   // [N, side², width]
            h = y.reshape([n, side, side, width]).permute([0, 3, 1, 2])       // [N, width, side, side]
        }
        let pooled = h.mean(axes: [2, 3])                                     // [N, W·2^depth]
        let features = b.scoped("feature") { linear(b, "fc", pooled, c.featureDim).geluTanh() }
        return (features, linear(b, "head", features, c.numClasses))
    }
}
