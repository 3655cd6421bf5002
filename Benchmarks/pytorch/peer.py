#!/usr/bin/env python3
"""PyTorch peer for Loom's benchmarks: a plain DiT/SiT (adaLN-Zero skeleton)
with an Internal Guidance (IG) head, written from scratch for timing only.

Usage: peer.py CASE [--repeats N] [--warmup W] [--threads T] [--compile] [--bf16] [--json]
See Benchmarks/pytorch/README.md for the cases and what they measure.
"""
import contextlib
import json
import math
import os
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import peer_common  # noqa: E402  (Benchmarks/peer_common.py)

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # reported in main() after the case name is checked
    torch = None

_Module = nn.Module if torch is not None else object

# ---------------------------------------------------------------- cases ----
PRESETS = {"S": dict(dim=384, depth=12, heads=6), "B": dict(dim=768, depth=12, heads=12)}
NUM_CLASSES = 1000          # label NUM_CLASSES is the null (CFG) class
IG_LAYER = 4                # IG head reads the residual stream after 4 blocks
CASES = {
    # name: (preset, patch, batch, kind)   -- latents are always 4x32x32
    "train-s2-b8":        ("S", 2, 8, "train"),
    "sample-ig-s2-b8":    ("S", 2, 8, "sample-ig"),
    "sample-igcfg-s2-b8": ("S", 2, 8, "sample-igcfg"),
    "sample-ig-s4-b1":    ("S", 4, 1, "sample-ig"),
    "train-s4-b64":       ("S", 4, 64, "train"),
    "train-b2-b4":        ("B", 2, 4, "train"),
}
IN_CH, OUT_CH, RES = 4, 4, 32
GUIDE_W, CFG_S, DT = 1.5, 1.5, -1.0 / 50


# ---------------------------------------------------------------- model ----
def sincos_2d(dim, grid):
    """Fixed 2-D sin-cos positional embedding, [grid*grid, dim], row-major."""
    def one_axis(d, pos):
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        out = pos.reshape(-1, 1).double() * omega.reshape(1, -1)
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    emb = torch.cat([one_axis(dim // 2, ys), one_axis(dim // 2, xs)], dim=1)
    return emb.float()


def timestep_freqs(t, dim=256):
    """Sinusoidal embedding of t*1000 (t in [0,1]), [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = (t.float() * 1000)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(h, shift, scale):
    return h * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Block(_Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.ada = nn.Linear(dim, 6 * dim)

    def attn(self, h):
        b, t, d = h.shape
        q, k, v = self.qkv(h).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)           # [b, heads, t, hd]
        return self.proj(o.transpose(1, 2).reshape(b, t, d))

    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(F.silu(c)).chunk(6, dim=-1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh1, sc1))
        h = modulate(self.norm2(x), sh2, sc2)
        x = x + g2.unsqueeze(1) * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))
        return x


class FinalLayer(_Module):
    def __init__(self, dim, patch, out_ch):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, patch * patch * out_ch)

    def forward(self, x, c):
        shift, scale = self.ada(F.silu(c)).chunk(2, dim=-1)
        return self.out(modulate(self.norm(x), shift, scale))


class DiT(_Module):
    """DiT/SiT with an IG head after block `ig_layer`; forward -> (D_f, D_i)."""

    def __init__(self, dim, depth, heads, patch, ig_layer=IG_LAYER):
        super().__init__()
        self.patch, self.ig_layer, self.grid = patch, ig_layer, RES // patch
        self.embed = nn.Conv2d(IN_CH, dim, kernel_size=patch, stride=patch)
        self.register_buffer("pos", sincos_2d(dim, self.grid)[None])
        self.t_mlp = nn.Sequential(nn.Linear(256, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.y_emb = nn.Embedding(NUM_CLASSES + 1, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.final = FinalLayer(dim, patch, OUT_CH)
        self.ig_final = FinalLayer(dim, patch, OUT_CH)   # separate copy

    def unpatchify(self, x):
        b, p, g = x.shape[0], self.patch, self.grid
        x = x.reshape(b, g, g, p, p, OUT_CH).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, OUT_CH, g * p, g * p)

    def forward(self, x, t, y):
        x = self.embed(x).flatten(2).transpose(1, 2) + self.pos   # [B, T, D]
        c = self.t_mlp(timestep_freqs(t)) + self.y_emb(y)
        d_i = None
        for i, blk in enumerate(self.blocks, start=1):
            x = blk(x, c)
            if i == self.ig_layer:
                d_i = self.ig_final(x, c)
        return self.unpatchify(self.final(x, c)), self.unpatchify(d_i)


# ---------------------------------------------------------------- FLOPs ----
def forward_macs(dim, depth, heads, patch, batch):
    """Multiply-adds of one forward (all Linears, patch conv, QK^T and AV)."""
    tokens = (RES // patch) ** 2
    pp_out = patch * patch * OUT_CH
    per_image = 0
    per_image += tokens * (IN_CH * patch * patch) * dim          # patch embed conv
    per_image += 256 * dim + dim * dim                           # timestep MLP
    per_block = tokens * (3 * dim * dim + dim * dim + 8 * dim * dim)  # qkv, proj, mlp
    per_block += 2 * tokens * tokens * dim                       # QK^T + AV (all heads)
    per_block += dim * 6 * dim                                   # adaLN
    per_image += depth * per_block
    per_image += 2 * (dim * 2 * dim + tokens * dim * pp_out)     # final + IG head
    return batch * per_image


# ---------------------------------------------------------------- steps ----
def precision_context(bf16):
    """A factory of the context the model step runs in: CPU autocast to bfloat16 with --bf16
    (weights, gradients and the optimizer stay float32), else nothing."""
    if bf16:
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext


def make_train_step(model, fwd, batch, patch, autocast=contextlib.nullcontext):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ema = [p.detach().clone() for p in params]
    x = torch.randn(batch, IN_CH, RES, RES)
    y = torch.randint(0, NUM_CLASSES, (batch,))
    y = torch.where(torch.rand(batch) < 0.1, torch.full_like(y, NUM_CLASSES), y)

    def step():
        # Flow matching (SiT): x_t = (1-t) x + t e, target u = e - x.
        t = torch.rand(batch)
        e = torch.randn_like(x)
        tb = t.view(-1, 1, 1, 1)
        x_t = (1 - tb) * x + tb * e
        u = e - x
        with autocast():                                         # forward + loss; backward outside
            d_f, d_i = fwd(x_t, t, y)
            loss = F.mse_loss(d_f, u) + 0.5 * F.mse_loss(d_i, u)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():                                    # EMA 0.9999
            torch._foreach_mul_(ema, 0.9999)
            torch._foreach_add_(ema, params, alpha=1 - 0.9999)
        return loss
    return step


def make_sample_step(fwd, batch, cfg, autocast=contextlib.nullcontext):
    state = {"x": torch.randn(batch, IN_CH, RES, RES)}
    t = torch.full((batch,), 1.0)
    y = torch.randint(0, NUM_CLASSES, (batch,))
    if cfg:   # one forward on 2B: [conditional; unconditional]
        tt = torch.cat([t, t])
        yy = torch.cat([y, torch.full_like(y, NUM_CLASSES)])

    def step():
        with torch.inference_mode(), autocast():
            x = state["x"]
            if cfg:
                d_f, d_i = fwd(torch.cat([x, x]), tt, yy)
                g = d_i + GUIDE_W * (d_f - d_i)                  # IG per half
                g_c, g_u = g.chunk(2)
                d = g_u + CFG_S * (g_c - g_u)                    # CFG
            else:
                d_f, d_i = fwd(x, t, y)
                d = d_i + GUIDE_W * (d_f - d_i)                  # IG
            state["x"] = x + DT * d.float()                      # Euler; the state stays float32
        return state["x"]
    return step


# ----------------------------------------------------------------- main ----
def parse_args():
    def extra(ap):
        ap.add_argument("--compile", action="store_true")
        ap.add_argument("--bf16", action="store_true",
                        help="run the model step under torch.autocast('cpu', dtype=torch.bfloat16)")
    return peer_common.parse_args(__doc__, CASES, extra=extra)


def main():
    args = parse_args()
    if torch is None:
        print("PyTorch is not installed: see Benchmarks/pytorch/README.md", file=sys.stderr)
        sys.exit(3)
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)

    preset, patch, batch, kind = CASES[args.case]
    cfg = PRESETS[preset]
    model = DiT(cfg["dim"], cfg["depth"], cfg["heads"], patch)
    fwd = model
    if args.compile:
        try:
            fwd = torch.compile(model)
        except Exception as exc:  # noqa: BLE001
            print(f"torch.compile failed: {exc}", file=sys.stderr)
            sys.exit(3)

    autocast = precision_context(args.bf16)
    if kind == "train":
        model.train()
        step = make_train_step(model, fwd, batch, patch, autocast)
    else:
        model.eval()
        step = make_sample_step(fwd, batch, cfg=(kind == "sample-igcfg"), autocast=autocast)

    fwd_batch = 2 * batch if kind == "sample-igcfg" else batch
    macs = forward_macs(cfg["dim"], cfg["depth"], cfg["heads"], patch, fwd_batch)
    step_macs = 3 * macs if kind == "train" else macs

    # Warm-up (compilation happens on the first call, so always do one with --compile).
    warmup = max(args.warmup, 1) if args.compile else args.warmup
    for i in range(warmup):
        print(f"warmup {i + 1}/{warmup}", file=sys.stderr)
        try:
            step()
        except Exception as exc:  # noqa: BLE001
            if not args.compile:
                raise
            print(f"torch.compile failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            sys.exit(3)

    times, med = peer_common.time_steps(step, args.repeats)
    result = {
        "impl": "pytorch-compile" if args.compile else "pytorch-eager",
        "case": args.case,
        "times_ms": [round(s * 1e3, 3) for s in times],
        "median_ms": round(med * 1e3, 3),
        "images_per_s": round(batch / med, 3),
        "gflops_per_s": round(2 * step_macs / med / 1e9, 3),
        "forward_gmacs": round(macs / 1e9, 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": args.threads,
        "precision": "bf16" if args.bf16 else "fp32",
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['impl']} {args.case}: median {result['median_ms']:.1f} ms, "
              f"{result['images_per_s']:.2f} img/s, {result['gflops_per_s']:.1f} GFLOP/s, "
              f"forward {result['forward_gmacs']:.3f} GMACs, peak RSS "
              f"{result['peak_rss_mib']:.0f} MiB, {args.threads} threads, {result['precision']}, "
              f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
