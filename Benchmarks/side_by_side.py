#!/usr/bin/env python3
"""Loom against PyTorch on the same benchmark cases, alternately, in one run.

Each round runs `loom bench CASE --json` and `peer.py CASE --json` (and, for training cases, the
memory-lean Loom plan) as separate processes, one after the other, so machine noise hits all
alike and each process's peak RSS is its own. Prints medians over every timed step of every round
and the ratio Loom / PyTorch per figure, as a Markdown table.

PyTorch is optional: without it (see Benchmarks/pytorch/README.md) the PyTorch columns are
skipped with a message. Run through Benchmarks/side-by-side.sh, which builds Loom first.

--bf16 runs Loom with `--precision bf16` and the PyTorch peers under bfloat16 autocast (the JAX
peer stays float32). --json FILE writes the per-case figures and the machine as JSON.
"""
import argparse, json, os, statistics, subprocess, sys, time

from machine import ISA_FLAGS, machine_info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ["train-s2-b8", "sample-ig-s2-b8", "sample-igcfg-s2-b8", "sample-ig-s4-b1", "train-s4-b64", "train-b2-b4"]


def log(message):
    print(message, file=sys.stderr, flush=True)


def run_json(command, label):
    """Runs one benchmark process; returns its JSON line, or None (with the reason logged)."""
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        log(f"  {label}: exit {result.returncode}: {result.stderr.strip().splitlines()[-1:] or ''}")
        return None
    line = [l for l in result.stdout.splitlines() if l.startswith("{")]
    if not line:
        log(f"  {label}: no JSON line in its output")
        return None
    data = json.loads(line[-1])
    log(f"  {label}: median {data['median_ms']:.1f} ms, peak RSS {data['peak_rss_mib']:.0f} MiB ({time.time() - started:.0f} s)")
    return data


def torch_python(explicit):
    """The Python that has torch: --python, else .venv-bench, else python3; None if none has it."""
    candidates = [explicit] if explicit else [os.path.join(ROOT, ".venv-bench/bin/python"), sys.executable]
    for python in candidates:
        if python and os.path.exists(python):
            probe = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
            if probe.returncode == 0:
                return python, probe.stdout.strip()
    return None, None


def merge(results):
    """Pools the rounds of one implementation: all timed steps, the largest peak RSS."""
    results = [r for r in results if r]
    if not results:
        return None
    times = [t for r in results for t in r["times_ms"]]
    median = statistics.median(times)
    first = results[0]
    merged = dict(first, times_ms=times, median_ms=median, rounds=len(results),
                  peak_rss_mib=max(r["peak_rss_mib"] for r in results))
    for key in ["gflops_per_s", "images_per_s"]:   # rates rescaled to the pooled median
        if key in first:
            merged[key] = first[key] * first["median_ms"] / median
    sgemm = [r["sgemm_gflops_per_s"] for r in results if r.get("sgemm_gflops_per_s")]
    if sgemm:
        merged["sgemm_gflops_per_s"] = statistics.median(sgemm)
    return merged


def fmt_ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "—"


def ratio(a, b):
    return round(a / b, 4) if a is not None and b else None


def case_summary(case, r, precision, machine):
    """One case for --json: the medians (ms), Loom / peer ratios and peak RSS (MiB), None where absent."""
    def get(impl, key):
        return (r[impl] or {}).get(key)
    loom_ms, torch_ms = get("loom", "median_ms"), get("pytorch-eager", "median_ms")
    out = {"case": case, "precision": precision, "machine": machine,
           "loom_ms": loom_ms, "pytorch_ms": torch_ms, "loom_over_pytorch": ratio(loom_ms, torch_ms),
           "loom_peak_rss_mib": get("loom", "peak_rss_mib"), "pytorch_peak_rss_mib": get("pytorch-eager", "peak_rss_mib"),
           "rss_ratio": ratio(get("loom", "peak_rss_mib"), get("pytorch-eager", "peak_rss_mib")),
           "loom_kernels": get("loom", "kernels"),
           "loom_gflops_per_s": get("loom", "gflops_per_s"), "pytorch_gflops_per_s": get("pytorch-eager", "gflops_per_s")}
    if r["loom-lean"]:
        out.update(loom_lean_ms=get("loom-lean", "median_ms"), loom_lean_peak_rss_mib=get("loom-lean", "peak_rss_mib"),
                   loom_lean_over_pytorch=ratio(get("loom-lean", "median_ms"), torch_ms),
                   loom_lean_rematerialized_blocks=get("loom-lean", "rematerialized_blocks"))
    if r["pytorch-compile"]:
        compile_ms = get("pytorch-compile", "median_ms")
        out.update(torch_compile_ms=compile_ms, loom_over_compile=ratio(loom_ms, compile_ms),
                   torch_compile_peak_rss_mib=get("pytorch-compile", "peak_rss_mib"))
    if r["jax"]:
        jax_ms = get("jax", "median_ms")
        out.update(jax_ms=jax_ms, jax_precision="fp32", loom_over_jax=ratio(loom_ms, jax_ms),
                   jax_peak_rss_mib=get("jax", "peak_rss_mib"))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", default=CASES, help="cases to run (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per case")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lean-budget", default="880M",
                        help="loom --memory-budget for the memory-lean training plan ('' to skip)")
    parser.add_argument("--lean-cases", nargs="*", default=["train-s2-b8"],
                        help="training cases that also run the memory-lean plan")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--jax", action="store_true",
                        help="also time the jitted JAX peer (sampler cases; needs jax in the same Python)")
    parser.add_argument("--python", help="Python with torch (default: .venv-bench, then this one)")
    parser.add_argument("--loom", default=os.path.join(ROOT, ".build/release/loom"))
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--bf16", action="store_true",
                        help="bfloat16: loom bench --precision bf16, peer.py --bf16 (autocast; JAX stays fp32)")
    parser.add_argument("--json", metavar="FILE", dest="json_file",
                        help="also write per-case medians, ratios, peak RSS, precision and machine to FILE as JSON")
    args = parser.parse_args()
    for case in args.cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r} (cases: {', '.join(CASES)})")
    if not os.path.exists(args.loom):
        parser.error(f"{args.loom} not found: build it with `swift build -c release --product loom`")

    python, torch_version = torch_python(args.python)
    if python is None:
        log("PyTorch is not installed: the PyTorch columns are skipped. To include them: "
            "python3 -m venv .venv-bench && .venv-bench/bin/pip install -r Benchmarks/pytorch/requirements.txt")
    env_threads = ["--threads", str(args.threads)]
    precision = "bf16" if args.bf16 else "fp32"
    loom_precision = ["--precision", "bf16"] if args.bf16 else []
    peer_precision = ["--bf16"] if args.bf16 else []
    machine = machine_info()
    if args.bf16 and args.jax:
        log("--bf16: the JAX peer has no bfloat16 mode; its column stays float32")
    rows = []
    for case in args.cases:
        log(f"{case}:")
        runs = {"loom": [], "loom-lean": [], "pytorch-eager": [], "pytorch-compile": [], "jax": []}
        training = case.startswith("train")
        for round_index in range(args.rounds):
            roofline = [] if round_index == 0 else ["--no-roofline"]
            runs["loom"].append(run_json([args.loom, "bench", case, "--json", "--repeats", str(args.repeats)]
                                         + env_threads + roofline + loom_precision, f"round {round_index + 1} loom"))
            if python:
                runs["pytorch-eager"].append(run_json([python, "Benchmarks/pytorch/peer.py", case, "--json", "--repeats",
                                                       str(args.repeats)] + env_threads + peer_precision,
                                                      f"round {round_index + 1} pytorch"))
            if training and args.lean_budget and case in args.lean_cases:
                runs["loom-lean"].append(run_json([args.loom, "bench", case, "--json", "--no-roofline", "--repeats",
                                                   str(args.repeats), "--memory-budget", args.lean_budget] + env_threads
                                                  + loom_precision, f"round {round_index + 1} loom lean"))
            if python and args.compile:
                runs["pytorch-compile"].append(run_json([python, "Benchmarks/pytorch/peer.py", case, "--json", "--compile",
                                                         "--repeats", str(args.repeats)] + env_threads + peer_precision,
                                                        f"round {round_index + 1} torch.compile"))
            if python and args.jax and not training:
                runs["jax"].append(run_json([python, "Benchmarks/jax/peer.py", case, "--json", "--repeats",
                                             str(args.repeats)] + env_threads, f"round {round_index + 1} jax"))
        rows.append((case, {k: merge(v) for k, v in runs.items()}))

    peer_label = "bf16 autocast" if args.bf16 else "fp32"
    lines = [f"CPU: {machine['cpu']} ({machine['arch']}); ISA: {', '.join(machine['isa']) or 'none of ' + ', '.join(ISA_FLAGS)}.",
             "",
             f"Machine: {machine['arch']}, {machine['cores']} cores, {args.threads} threads; precision {precision}; "
             f"torch {torch_version or 'not installed'}; "
             f"{args.rounds} alternating rounds × {args.repeats} timed steps per process; medians over all timed steps.",
             "",
             f"| case | Loom ms ({precision}) | PyTorch ms ({peer_label}) | Loom / PyTorch | Loom GFLOP/s (of its GEMM alone) | Loom RSS MiB | PyTorch RSS MiB | RSS ratio |"
             + (f" torch.compile ms ({peer_label}) | Loom / compile |" if args.compile else "")
             + (f" JAX jit ms (fp32) | Loom / JAX |" if args.jax else ""),
             "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.compile else "") + ("---:|---:|" if args.jax else "")]
    for case, r in rows:
        for impl in ["loom", "loom-lean"]:
            mine, peer = r[impl], r["pytorch-eager"]
            if mine is None:
                continue
            sgemm = mine.get("sgemm_gflops_per_s") or (r["loom"] or {}).get("sgemm_gflops_per_s")
            rate = f"{mine['gflops_per_s']:.1f}" + (f" ({100 * mine['gflops_per_s'] / sgemm:.0f}%)" if sgemm else "")
            label = case if impl == "loom" else f"{case}, memory-lean ({mine.get('rematerialized_blocks', 0)} blocks recomputed)"
            cells = [label, f"{mine['median_ms']:.1f}", f"{peer['median_ms']:.1f}" if peer else "—",
                     fmt_ratio(mine["median_ms"], peer and peer["median_ms"]), rate, f"{mine['peak_rss_mib']:.0f}",
                     f"{peer['peak_rss_mib']:.0f}" if peer else "—", fmt_ratio(mine["peak_rss_mib"], peer and peer["peak_rss_mib"])]
            if args.compile:
                c = r["pytorch-compile"]
                cells += [f"{c['median_ms']:.1f}" if c else "—", fmt_ratio(mine["median_ms"], c and c["median_ms"])]
            if args.jax:
                j = r["jax"] if impl == "loom" else None
                cells += [f"{j['median_ms']:.1f}" if j else "—", fmt_ratio(mine["median_ms"], j and j["median_ms"])]
            lines.append("| " + " | ".join(cells) + " |")
        if r["loom-lean"] and r["loom"]:
            lines.append(f"| {case}: lean / fast step time | {fmt_ratio(r['loom-lean']['median_ms'], r['loom']['median_ms'])} | | | | | | |"
                         + (" | |" if args.compile else "") + (" | |" if args.jax else ""))
    kernels = [(case, impl, r[impl]["kernels"]) for case, r in rows for impl in ["loom", "loom-lean"]
               if r[impl] and r[impl].get("kernels")]
    if kernels:
        lines.append("")
        if len({k for _, _, k in kernels}) == 1:
            lines.append(f"Loom kernels: {kernels[0][2]}")
        else:
            lines += [f"- Loom kernels, {case}{', memory-lean' if impl == 'loom-lean' else ''}: {k}" for case, impl, k in kernels]
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.json_file:
        summary = {"machine": machine, "precision": precision, "threads": args.threads, "rounds": args.rounds,
                   "repeats": args.repeats, "torch": torch_version,
                   "cases": [case_summary(case, r, precision, machine) for case, r in rows]}
        with open(args.json_file, "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
    with open(os.path.join(ROOT, "runs", "side-by-side.json") if os.path.isdir(os.path.join(ROOT, "runs")) else os.devnull, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
