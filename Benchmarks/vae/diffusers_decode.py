"""Times diffusers' AutoencoderKL (SD-VAE configuration, random weights) decode or encode on CPU.

The model is built from the configuration that `stabilityai/sd-vae-ft-ema` ships in its
config.json (nothing is downloaded): block_out_channels [128, 256, 512, 512], 2 layers per
block, 32 GroupNorm groups, 4 latent channels, f8. Weights are PyTorch's default random
initialisation after torch.manual_seed(0); the speed does not depend on their values.

    .venv-bench/bin/python Benchmarks/vae/diffusers_decode.py [--encode] [--size 256] [--batch 1]
        [--threads 2] [--repeats 5] [--warmup 1] [--json]

decode: latent [B, 4, S/8, S/8] -> image [B, 3, S, S]; encode (--encode): image -> posterior
(encoder + quant_conv; the timed step returns the distribution's mean). float32, inference_mode.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

try:
    import torch
    import diffusers
    from diffusers import AutoencoderKL
except ImportError as error:
    print(f"needs torch and diffusers ({error}): see Benchmarks/vae/README.md", file=sys.stderr)
    sys.exit(3)

# stabilityai/sd-vae-ft-ema config.json (the fields that shape the network).
SD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=32,
    sample_size=256,
    scaling_factor=0.18215,
)


def rss_mib():
    """(current RSS, peak RSS) of this process in MiB, from /proc/self/status."""
    cur = peak = float("nan")
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return cur, peak


def reset_peak_rss():
    """Resets the kernel's peak-RSS mark (VmHWM) of this process; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def count_macs(model, run):
    """Multiply-adds of one call of `run`: Conv2d and Linear layers by forward hooks, plus the
    two attention products (Q K^T and A V: 2 B T^2 C) of each attention block."""
    total = [0]
    hooks = []

    def conv_hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total[0] += out.numel() * (mod.in_channels // mod.groups) * k

    def linear_hook(mod, inp, out):
        total[0] += out.numel() * mod.in_features

    def attn_hook(mod, inp, out):
        x = inp[0]
        if x.ndim == 4:
            b, c, h, w = x.shape
            t = h * w
        else:
            b, t, c = x.shape
        total[0] += 2 * b * t * t * c

    from diffusers.models.attention_processor import Attention
    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, torch.nn.Linear):
            hooks.append(mod.register_forward_hook(linear_hook))
        elif isinstance(mod, Attention):
            hooks.append(mod.register_forward_hook(attn_hook))
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return total[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encode", action="store_true", help="time encode (image -> posterior) instead of decode")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (multiple of 8)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()
    if args.size % 8 or args.size <= 0:
        ap.error("--size must be a positive multiple of 8")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)

    rss_start, _ = rss_mib()
    model = AutoencoderKL(**SD_VAE).eval()
    params = sum(p.numel() for p in model.parameters())
    side = args.size // 8
    if args.encode:
        x = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
        case = f"encode-sd-f8-{args.size}-b{args.batch}"

        def step():
            return model.encode(x).latent_dist.mean
    else:
        x = torch.randn(args.batch, 4, side, side)
        case = f"decode-sd-f8-{args.size}-b{args.batch}"

        def step():
            return model.decode(x).sample
    rss_model, peak_model = rss_mib()
    maxrss_model = maxrss_mib()
    hwm_reset = reset_peak_rss()       # so that VmHWM below is the peak of the calls alone

    with torch.inference_mode():
        macs = count_macs(model, step)            # one untimed call; also serves as warm-up
        for i in range(args.warmup):
            print(f"warmup {i + 1}/{args.warmup}", file=sys.stderr)
            step()
        times = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            out = step()
            times.append(time.perf_counter() - t0)
            print(f"repeat {i + 1}/{args.repeats}: {times[-1] * 1e3:.1f} ms", file=sys.stderr)
    med = statistics.median(times)
    _, peak_end = rss_mib()
    maxrss_end = maxrss_mib()
    step_peak = peak_end if hwm_reset else maxrss_end

    result = {
        "impl": "diffusers-eager",
        "case": case,
        "input_shape": list(x.shape),
        "output_shape": list(out.shape),
        "times_ms": [round(t * 1e3, 3) for t in times],
        "median_ms": round(med * 1e3, 3),
        "images_per_s": round(args.batch / med, 3),
        "gmacs": round(macs / 1e9, 3),
        "gflops_per_s": round(2 * macs / med / 1e9, 2),
        "params_m": round(params / 1e6, 3),
        "peak_rss_mib": round(maxrss_end, 1),
        "rss_start_mib": round(rss_start, 1),
        "rss_after_model_mib": round(rss_model, 1),
        "peak_rss_after_model_mib": round(max(maxrss_model, peak_model), 1),
        # Peak RSS over the model calls (MAC count, warm-up, timed repeats), and how far it
        # rose above the RSS the process held once the model and its input existed. Measured
        # by resetting VmHWM after construction; where that is refused, ru_maxrss is used and
        # the delta is a lower bound if construction itself peaked higher.
        "step_peak_rss_mib": round(step_peak, 1),
        "step_peak_delta_mib": round(step_peak - rss_model, 1),
        "peak_reset": hwm_reset,
        "threads": args.threads,
        "precision": "fp32",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['impl']} {case}: median {result['median_ms']:.1f} ms "
              f"({', '.join(f'{t:.1f}' for t in result['times_ms'])}), {result['gmacs']:.1f} GMACs, "
              f"{result['gflops_per_s']:.1f} GFLOP/s, peak RSS {result['peak_rss_mib']:.0f} MiB "
              f"(model {result['rss_after_model_mib']:.0f} MiB, step +{result['step_peak_delta_mib']:.0f} MiB), "
              f"{args.threads} threads, torch {torch.__version__}, diffusers {diffusers.__version__}, "
              f"{result['cpu']}")


if __name__ == "__main__":
    main()
