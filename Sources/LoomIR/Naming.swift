/// Every naming convention that crosses a layer (zoo, compiler, runtime, training, files), defined
/// once. Other modules refer to these names; none spells them as string literals of its own.
/// `Docs/conventions.md` §6 describes them for users.
public enum Naming {
    // MARK: graph outputs

    /// Gradient outputs of a differentiated graph: `grad.<parameter key>`.
    public static let gradientPrefix = "grad."
    /// New values of persistent tensors after a training step: `update.<parameter or buffer key>`;
    /// the runtime writes them back (or the plan updates them in place).
    public static let updatePrefix = "update."
    /// The scalar loss a training graph differentiates.
    public static let lossOutput = "loss"
    /// The final head's loss term of an objective graph.
    public static let finalLossOutput = "loss_final"
    /// The intermediate (IG) head's loss term, when the model has one.
    public static let intermediateLossOutput = "loss_inter"
    /// The global gradient norm (before clipping) of a training step.
    public static let gradientNormOutput = "grad_norm"

    // MARK: persistent state

    /// AdamW first moments: `optim.m.<key>`.
    public static let firstMomentPrefix = "optim.m."
    /// AdamW second moments: `optim.v.<key>`.
    public static let secondMomentPrefix = "optim.v."
    /// EMA copies of the weights: `ema.<key>`.
    public static let emaPrefix = "ema."
    /// Every optimizer tensor (moments, run-time scalars) starts with this.
    public static let optimizerPrefix = "optim."

    // MARK: run-time scalars of a training step

    /// Learning rate of the step.
    public static let learningRateInput = "optim.lr"
    /// `1 − β₁ᵗ`.
    public static let firstBiasInput = "optim.bias1"
    /// `1 − β₂ᵗ`.
    public static let secondBiasInput = "optim.bias2"
    /// EMA decay of the step.
    public static let emaDecayInput = "optim.ema_decay"
    /// Global gradient-norm clip (+∞: none).
    public static let clipInput = "optim.clip"
    /// Decoupled weight decay.
    public static let weightDecayInput = "optim.weight_decay"
    /// Weight λ of the intermediate head's loss.
    public static let igLambdaInput = "loss.lambda"
    /// Weight ω of the training-acceleration target.
    public static let omegaInput = "loss.omega"

    // MARK: VAE graphs

    /// Decoder input: latents in the VAE's own space `[N, z, h, w]` (generator latents are mapped
    /// into it by the configuration's latent normalisation first).
    public static let vaeLatentInput = "latent"
    /// Encoder input: images `[N, 3, H, W]` in [−1, 1].
    public static let vaeImageInput = "image"
    /// Encoder input: the standard-normal draw of the posterior sample `[N, z, h, w]`.
    public static let vaeNoiseInput = "noise"
    /// Decoder output `[N, 3, H, W]` (about [−1, 1]; not clamped).
    public static let vaeDecodedOutput = "decoded"
    /// Encoder outputs: the diagonal Gaussian posterior's mean and log-variance (clamped to
    /// [−30, 20]) and the sample `mean + exp(logvar / 2)·noise`, each `[N, z, h, w]`.
    public static let posteriorMeanOutput = "posterior_mean"
    public static let posteriorLogvarOutput = "posterior_logvar"
    public static let posteriorSampleOutput = "posterior_sample"

    // MARK: golden files

    /// Parameter tensors of a golden file: `param.<state-dict key>`.
    public static let goldenParameterPrefix = "param."

    // MARK: scopes

    /// Scope of the optimizer's nodes.
    public static let optimizerScope = "optimizer"

    // MARK: file metadata

    /// Safetensors metadata key holding a run's `TrainingConfig` as JSON (checkpoints, plans).
    public static let trainingConfigKey = "loom.training"
    /// Safetensors metadata key holding a checkpoint's step count.
    public static let stepKey = "loom.step"
    /// Metadata key of an imported PyTorch checkpoint: the model configuration its shapes imply (JSON).
    public static let importedConfigKey = "loom.import.config"
    /// Plan header key holding the hash of the training configuration it was compiled for.
    public static let trainingConfigHashKey = "loom.training.hash"
    /// Plan header key holding the number of ranks a data-parallel step was compiled for (absent:
    /// one process).
    public static let ranksKey = "loom.ranks"

    /// `key` without `prefix`, or nil when it does not start with it.
    public static func strip(_ prefix: String, from key: String) -> String? {
        key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)) : nil
    }
}
