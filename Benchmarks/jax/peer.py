#!/usr/bin/env python3
"""JAX peer for Loom's sampler-step benchmarks: the same DiT/SiT skeleton as
Benchmarks/pytorch/peer.py (adaLN-Zero, IG head after block 4), float32, one
jitted sampler step (forward, IG, optional CFG, Euler update). Timing only:
weights are random.

Usage: peer.py CASE [--repeats N] [--warmup W] [--threads T] [--json]
Cases: sample-ig-s2-b8, sample-igcfg-s2-b8, sample-ig-s4-b1.
"""
import json
import math
import os
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import peer_common  # noqa: E402  (Benchmarks/peer_common.py)

PRESETS = {"S": dict(dim=384, depth=12, heads=6)}
CASES = {
    "sample-ig-s2-b8": ("S", 2, 8, False),
    "sample-igcfg-s2-b8": ("S", 2, 8, True),
    "sample-ig-s4-b1": ("S", 4, 1, False),
}
NUM_CLASSES, IG_LAYER = 1000, 4
IN_CH, OUT_CH, RES = 4, 4, 32
GUIDE_W, CFG_S, DT = 1.5, 1.5, -1.0 / 50


def parse_args():
    return peer_common.parse_args(__doc__, CASES, what="JAX peer case")


def init_params(key, dim, depth, patch):
    import jax
    import jax.numpy as jnp
    keys = iter(jax.random.split(key, 16 + 8 * depth))

    def dense(n_in, n_out, std=0.02):
        return {"w": std * jax.random.normal(next(keys), (n_in, n_out), jnp.float32), "b": jnp.zeros((n_out,), jnp.float32)}

    pp = patch * patch * OUT_CH
    return {
        "embed": dense(IN_CH * patch * patch, dim),
        "t1": dense(256, dim), "t2": dense(dim, dim),
        "y": 0.02 * jax.random.normal(next(keys), (NUM_CLASSES + 1, dim), jnp.float32),
        "blocks": [{"qkv": dense(dim, 3 * dim), "proj": dense(dim, dim), "fc1": dense(dim, 4 * dim),
                    "fc2": dense(4 * dim, dim), "ada": dense(dim, 6 * dim)} for _ in range(depth)],
        "final": {"ada": dense(dim, 2 * dim), "out": dense(dim, pp)},
        "ig": {"ada": dense(dim, 2 * dim), "out": dense(dim, pp)},
    }


def build_step(dim, depth, heads, patch, cfg):
    import jax
    import jax.numpy as jnp
    grid = RES // patch

    def linear(p, x):
        return x @ p["w"] + p["b"]

    def layer_norm(x):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + 1e-6)

    def modulate(h, shift, scale):
        return h * (1 + scale[:, None]) + shift[:, None]

    def sincos(d, n):
        pos = jnp.arange(n, dtype=jnp.float32)
        omega = 1.0 / 10000 ** (jnp.arange(d // 4, dtype=jnp.float32) / (d / 4))
        ys, xs = jnp.meshgrid(pos, pos, indexing="ij")
        parts = []
        for axis in (ys, xs):
            out = axis.reshape(-1, 1) * omega[None]
            parts += [jnp.sin(out), jnp.cos(out)]
        return jnp.concatenate(parts, axis=1)[None]

    pos = sincos(dim, grid)

    def block(p, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = jnp.split(linear(p["ada"], jax.nn.silu(c)), 6, axis=-1)
        b, t, _ = x.shape
        h = modulate(layer_norm(x), sh1, sc1)
        qkv = linear(p["qkv"], h).reshape(b, t, 3, heads, dim // heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]          # [b, t, heads, hd]
        o = jax.nn.dot_product_attention(q, k, v)                   # [b, t, heads, hd]
        x = x + g1[:, None] * linear(p["proj"], o.reshape(b, t, dim))
        h = modulate(layer_norm(x), sh2, sc2)
        return x + g2[:, None] * linear(p["fc2"], jax.nn.gelu(linear(p["fc1"], h), approximate=True))

    def final(p, x, c):
        shift, scale = jnp.split(linear(p["ada"], jax.nn.silu(c)), 2, axis=-1)
        out = linear(p["out"], modulate(layer_norm(x), shift, scale))
        b = out.shape[0]
        out = out.reshape(b, grid, grid, patch, patch, OUT_CH).transpose(0, 5, 1, 3, 2, 4)
        return out.reshape(b, OUT_CH, RES, RES)

    def forward(params, x, t, y):
        b = x.shape[0]
        patches = x.reshape(b, IN_CH, grid, patch, grid, patch).transpose(0, 2, 4, 1, 3, 5)
        h = linear(params["embed"], patches.reshape(b, grid * grid, IN_CH * patch * patch)) + pos
        half = 128
        freqs = jnp.exp(-math.log(10000) * jnp.arange(half, dtype=jnp.float32) / half)
        args = (t * 1000)[:, None] * freqs[None]
        temb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
        c = linear(params["t2"], jax.nn.silu(linear(params["t1"], temb))) + params["y"][y]
        d_i = None
        for i, p in enumerate(params["blocks"], start=1):
            h = block(p, h, c)
            if i == IG_LAYER:
                d_i = final(params["ig"], h, c)
        return final(params["final"], h, c), d_i

    def step(params, x, t, y):
        if cfg:
            d_f, d_i = forward(params, jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                               jnp.concatenate([y, jnp.full_like(y, NUM_CLASSES)]))
            g = d_i + GUIDE_W * (d_f - d_i)
            g_c, g_u = jnp.split(g, 2)
            d = g_u + CFG_S * (g_c - g_u)
        else:
            d_f, d_i = forward(params, x, t, y)
            d = d_i + GUIDE_W * (d_f - d_i)
        return x + DT * d

    return jax.jit(step)


def main():
    args = parse_args()
    # XLA sizes its CPU thread pool from the cores it may use: allow `threads` of them.
    cores = sorted(os.sched_getaffinity(0))
    if args.threads < len(cores):
        os.sched_setaffinity(0, cores[:args.threads])
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        print("JAX is not installed: .venv-bench/bin/pip install 'jax[cpu]'", file=sys.stderr)
        sys.exit(3)
    preset, patch, batch, cfg = CASES[args.case]
    shape = PRESETS[preset]
    params = init_params(jax.random.PRNGKey(0), shape["dim"], shape["depth"], patch)
    step_fn = build_step(shape["dim"], shape["depth"], shape["heads"], patch, cfg)
    key = jax.random.PRNGKey(1)
    x = jax.random.normal(key, (batch, IN_CH, RES, RES), jnp.float32)
    t = jnp.ones((batch,), jnp.float32)
    y = jax.random.randint(key, (batch,), 0, NUM_CLASSES)
    for i in range(max(args.warmup, 1)):                  # the first call compiles
        x = step_fn(params, x, t, y).block_until_ready()
        print(f"warmup {i + 1}", file=sys.stderr)
    state = {"x": x}

    def step():
        state["x"] = step_fn(params, state["x"], t, y).block_until_ready()

    times, med = peer_common.time_steps(step, args.repeats)
    result = {"impl": "jax-jit", "case": args.case, "times_ms": [round(s * 1e3, 3) for s in times],
              "median_ms": round(med * 1e3, 3), "images_per_s": round(batch / med, 3),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "threads": args.threads, "jax": jax.__version__}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"jax-jit {args.case}: median {result['median_ms']:.1f} ms, {result['images_per_s']:.2f} img/s, "
              f"peak RSS {result['peak_rss_mib']:.0f} MiB, jax {jax.__version__}")


if __name__ == "__main__":
    main()
