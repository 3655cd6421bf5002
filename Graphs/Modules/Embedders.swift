import Foundation
import LoomIR

/// Sinusoidal timestep embedding (cos first, 128 frequencies) then `t_embedder.mlp.0` / `mlp.2`.
/// t: [N] → [N, D].
public func timestepEmbedding(_ b: GraphBuilder, _ t: Tensor, hidden: Int, frequencies: Int = 256) -> Tensor {
    b.scoped("t_embedder") {
        let n = t.shape[0], half = frequencies / 2
        let logMaxPeriod = log(10000.0)
        let freqs = b.iota(shape: [1, half], axis: 1).affine(scale: Float(-logMaxPeriod / Double(half)), shift: 0).exp()
        let args = t.reshape([n, 1]) * freqs                   // [N, 128]
        let embedding = concat([args.cos(), args.sin()], axis: 1)  // [N, 256]
        return b.scoped("mlp") {
            let h = linear(b, "0", embedding, hidden, weightInit: .normal(std: 0.02)).silu()
            return linear(b, "2", h, hidden, weightInit: .normal(std: 0.02))
        }
    }
}

/// Class embedding table `y_embedder.embedding_table.weight` [classes + 1, D]; the last row is the
/// null label used for classifier-free guidance. y: [N] integer → [N, D].
public func labelEmbedding(_ b: GraphBuilder, _ y: Tensor, numClasses: Int, hidden: Int) -> Tensor {
    b.scoped("y_embedder") {
        b.scoped("embedding_table") {
            b.parameter("weight", [numClasses + 1, hidden], initializer: .normal(std: 0.02))
        }.gather(y)
    }
}

/// Patch embedding (`x_embedder.proj`, a p×p stride-p conv) plus the fixed sin-cos `pos_embed`.
/// x: [N, C, H, W] → [N, T, D].
public func patchEmbedding(_ b: GraphBuilder, _ x: Tensor, patch: Int, hidden: Int) -> Tensor {
    let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3])
    let tokens = b.scoped("x_embedder") {
        b.scoped("proj") {
            let fanIn = c * patch * patch
            let weight = b.parameter("weight", [hidden, c, patch, patch],
                                     initializer: .xavierUniform(fanIn: fanIn, fanOut: hidden))
            let bias = b.parameter("bias", [hidden], initializer: .zeros)
            return x.patchify(patch).matmul(weight.reshape([hidden, fanIn]), transposeB: true) + bias
        }
    }
    let grid = (h / patch, w / patch)
    let pos = b.parameter("pos_embed", [1, grid.0 * grid.1, hidden],
                          initializer: .sinCos2D(gridH: grid.0, gridW: grid.1), trainable: false)
    return tokens + pos
}
