import LoomCompiler
import LoomData
import LoomGraphs
import LoomIR
import LoomRuntime

/// A KL autoencoder compiled for one image size: decodes generator latents to images and encodes
/// images to generator latents, a batch at a time, each direction one plan (made on first use and
/// kept per batch size). Latents cross into the VAE's space by the configuration's per-channel
/// scale and shift (`VAEConfig.latentScale`, `latentShift`).
public final class VAECodec {
    public let config: VAEConfig
    public let model: AutoencoderKL
    let parameters: [String: HostTensor]
    public let threads: Int
    public let kernels: KernelSelection
    private var decoders: [[Int]: PlanExecutor] = [:]
    private var encoders: [[Int]: PlanExecutor] = [:]

    /// `parameters`: diffusers keys (`VAEWeights.tensors`).
    public init(config: VAEConfig, parameters: [String: HostTensor], threads: Int = Threading.defaultThreads,
                kernels: KernelSelection = .current) throws {
        model = try AutoencoderKL(config)
        self.config = config
        self.parameters = parameters
        self.threads = threads
        self.kernels = kernels
    }

    /// The compiled decoder for latents `[batch, z, h, w]`.
    public func decoder(batch: Int, latentHeight: Int, latentWidth: Int) throws -> PlanExecutor {
        let key = [batch, latentHeight, latentWidth]
        if let executor = decoders[key] { return executor }
        let graph = try model.decoderGraph(batch: batch, latentHeight: latentHeight, latentWidth: latentWidth)
        let executor = try load(graph)
        decoders[key] = executor
        return executor
    }

    /// The compiled encoder for images `[batch, in, height, width]`.
    public func encoder(batch: Int, height: Int, width: Int) throws -> PlanExecutor {
        let key = [batch, height, width]
        if let executor = encoders[key] { return executor }
        let executor = try load(try model.encoderGraph(batch: batch, height: height, width: width))
        encoders[key] = executor
        return executor
    }

    func load(_ graph: Graph) throws -> PlanExecutor {
        let plan = try Pipeline.inference().plan(graph)
        let executor = try PlanExecutor(plan: plan, threads: threads, kernels: kernels)
        var needed: [String: HostTensor] = [:]
        for entry in executor.parameterEntries { needed[entry.name] = parameters[entry.name] }
        try executor.setParameters(needed)
        return executor
    }

    /// Generator latents `[N, z, h, w]` → VAE latents (`z·scale_c + shift_c`), and back.
    public func toVAESpace(_ latents: HostTensor) throws -> HostTensor { try affinePerChannel(latents, inverse: false) }
    public func toGeneratorSpace(_ latents: HostTensor) throws -> HostTensor { try affinePerChannel(latents, inverse: true) }

    func affinePerChannel(_ x: HostTensor, inverse: Bool) throws -> HostTensor {
        guard x.shape.count == 4, x.shape[1] == config.latentChannels else {
            throw DiffusionError("latents of shape \(x.shape) do not fit the VAE: it takes [N, \(config.latentChannels), h, w]")
        }
        let (scale, shift) = (config.channelScale, config.channelShift)
        let plane = x.shape[2] * x.shape[3]
        var values = x.floats
        for i in values.indices {
            let c = (i / plane) % config.latentChannels
            values[i] = inverse ? (values[i] - shift[c]) / scale[c] : values[i] * scale[c] + shift[c]
        }
        return HostTensor(shape: x.shape, floats: values)
    }

    /// Decodes generator latents `[N, z, h, w]` into images `[N, out, h·f, w·f]` (about [−1, 1]),
    /// `batch` at a time; `progress(done, total)` after each batch.
    public func decode(_ latents: HostTensor, batch: Int, progress: ((Int, Int) -> Void)? = nil) throws -> HostTensor {
        let vae = try toVAESpace(latents)
        let (n, h, w) = (vae.shape[0], vae.shape[2], vae.shape[3])
        return try batched(count: n, batch: batch, progress: progress) { start, count in
            try self.decoder(batch: count, latentHeight: h, latentWidth: w)
                .run(inputs: [Naming.vaeLatentInput: vae.items(start, count)])[Naming.vaeDecodedOutput]!
        }
    }

    /// Encodes images `[N, in, H, W]` in [−1, 1] into generator latents: the posterior mean, or with
    /// `noise` (`[N, z, H/f, W/f]`, standard normal) the posterior sample.
    public func encode(_ images: HostTensor, noise: HostTensor?, batch: Int,
                       progress: ((Int, Int) -> Void)? = nil) throws -> HostTensor {
        guard images.shape.count == 4, images.shape[1] == config.inChannels else {
            throw DiffusionError("images of shape \(images.shape) do not fit the VAE: it takes [N, \(config.inChannels), H, W]")
        }
        let (n, height, width, f) = (images.shape[0], images.shape[2], images.shape[3], config.downsamplingFactor)
        let latentShape = [n, config.latentChannels, height / f, width / f]
        let draws = noise ?? HostTensor(zeros: TensorType(.f32, latentShape))
        guard draws.shape == latentShape else { throw DiffusionError("noise of shape \(draws.shape): the posterior is \(latentShape)") }
        let encoded = try batched(count: n, batch: batch, progress: progress) { start, count in
            let outputs = try self.encoder(batch: count, height: height, width: width)
                .run(inputs: [Naming.vaeImageInput: images.items(start, count), Naming.vaeNoiseInput: draws.items(start, count)])
            return outputs[noise == nil ? Naming.posteriorMeanOutput : Naming.posteriorSampleOutput]!
        }
        return try toGeneratorSpace(encoded)
    }

    /// `body(start, count)` over items `0..<n`, `batch` at a time, results joined along the first axis.
    func batched(count n: Int, batch: Int, progress: ((Int, Int) -> Void)?,
                 _ body: (Int, Int) throws -> HostTensor) throws -> HostTensor {
        guard batch > 0 else { throw DiffusionError("--vae-batch must be at least 1") }
        var out: [Float] = []
        var shape: [Int] = []
        var start = 0
        while start < n {
            let count = min(batch, n - start)
            let y = try body(start, count)
            shape = [n] + y.shape.dropFirst()
            out += y.floats
            start += count
            progress?(start, n)
        }
        return HostTensor(shape: shape, floats: out)
    }
}
