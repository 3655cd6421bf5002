"""SD-VAE decode (or encode) of 256×256 images: Loom against diffusers on PyTorch eager, in one run.

Both build the SD-VAE configuration (`stabilityai/sd-vae-ft-ema`) with random weights, fp32, on the
same threads. Rounds alternate Loom and diffusers so that both see the same machine state; each
round is a separate process whose peak RSS (ru_maxrss) is recorded.

    python3 Benchmarks/vae/side_by_side.py [--encode] [--rounds 3] [--repeats 3] [--threads 2]
        [--loom .build/release/loom] [--python .venv-bench/bin/python] [--json FILE]

Loom's time per call is `loom profile`'s measured total (launch timers on; their cost is far below
a millisecond here); diffusers' is its mean over the repeats.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "Benchmarks"))
from machine import machine_info  # noqa: E402


def run(command, env):
    """Runs `command`, returning (stdout, peak RSS of that process in MiB)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode})")
    return out.decode(), usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--encode", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loom", default=os.path.join(ROOT, ".build/release/loom"))
    parser.add_argument("--python", default=os.path.join(ROOT, ".venv-bench/bin/python"))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    graph = "encoder" if args.encode else "decoder"
    loom_command = [args.loom, "profile", "sd-vae", "--graph", graph, "--batch", "1", "--input-size", "256",
                    "--runs", str(args.repeats), "--threads", str(args.threads), "--json"]
    peer_command = [args.python, "Benchmarks/vae/diffusers_decode.py", "--size", "256", "--batch", "1",
                    "--threads", str(args.threads), "--repeats", str(args.repeats), "--json"] + (["--encode"] if args.encode else [])
    loom_ms, peer_ms, loom_rss, peer_rss, peer_delta = [], [], [], [], []
    peer = None
    for round_index in range(args.rounds):
        for name in ("loom", "diffusers"):
            out, peak = run(loom_command if name == "loom" else peer_command, env)
            if name == "loom":
                profile = json.loads(out[out.index("{"):])
                loom_ms.append(1000 * sum(row["seconds"] for row in profile["rows"]))
                loom_rss.append(peak)
            else:
                peer = json.loads(out.strip().splitlines()[-1])
                peer_ms.append(statistics.mean(peer["times_ms"]))
                peer_rss.append(peak)
                peer_delta.append(peer.get("step_peak_delta_mib"))
            print(f"round {round_index + 1} {name}: {loom_ms[-1] if name == 'loom' else peer_ms[-1]:.0f} ms", flush=True)
    machine = machine_info()
    result = {
        "case": f"{graph}-sd-vae-256-b1", "threads": args.threads, "cpu": machine["cpu"], "isa": machine["isa"],
        "loom_ms": loom_ms, "diffusers_ms": peer_ms,
        "loom_median_ms": statistics.median(loom_ms), "diffusers_median_ms": statistics.median(peer_ms),
        "ratio_loom_over_diffusers": statistics.median(loom_ms) / statistics.median(peer_ms),
        "loom_peak_rss_mib": max(loom_rss), "diffusers_peak_rss_mib": max(peer_rss),
        "diffusers_step_peak_delta_mib": peer_delta[-1],
        "torch": peer.get("torch"), "diffusers": peer.get("diffusers"),
        "loom_conv": os.environ.get("LOOM_CONV", "winograd"),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
