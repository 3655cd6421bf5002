#!/usr/bin/env bash
# Trains the demo model (loom demo's configuration) twice, in fp32 and in bf16, from the same seed,
# samples 1,000 images from each with the same seed, and scores both with FID-FM. Writes everything
# to runs/precision/ and prints the loss windows and the scores (Docs/training.md records a run).
# Usage: bash scripts/precision-compare.sh [STEPS]   (default 800, the demo's)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-800}
loom=.build/release/loom
swift build -c release --product loom >&2
out=runs/precision
mkdir -p "$out"
classifier=runs/classifier.safetensors
[ -f "$classifier" ] || $loom train-classifier --out "$classifier"
for precision in fp32 bf16; do
  run=$out/$precision
  if [ ! -f "$run/checkpoint.safetensors" ]; then
    /usr/bin/time -f "$precision training: %e s wall" $loom train sit --patch 4 --hidden 128 --depth 6 --heads 4 \
      --ig-layer 2 --input-size 32 --batch 32 --steps "$steps" --lr 5e-4 --warmup 50 --ema-decay 0.999 \
      --precision "$precision" --log-every 100 --out "$run"
  fi
  $loom sample --checkpoint "$run/checkpoint.safetensors" --steps 25 --per-class 100 --batch 100 --seed 1 \
    --guidance none --precision "$precision" --out "$run/samples" >/dev/null
  echo "== $precision: FID-FM of 1,000 unguided samples"
  $loom evaluate --samples "$run/samples/samples.safetensors" --classifier "$classifier" | tail -n 4
done
echo "== loss per 100-step window (final head, IG head): fp32 | bf16"
python3 - "$out" <<'PY'
import csv, sys
def windows(path):
    rows = list(csv.DictReader(open(path)))
    out = []
    for start in range(0, len(rows), 100):
        chunk = rows[start:start + 100]
        out.append((start + 1, start + len(chunk),
                    sum(float(r["loss_final"]) for r in chunk) / len(chunk),
                    sum(float(r["loss_inter"]) for r in chunk) / len(chunk)))
    return out
a, b = windows(sys.argv[1] + "/fp32/loss.csv"), windows(sys.argv[1] + "/bf16/loss.csv")
print("| steps | fp32 final | fp32 IG head | bf16 final | bf16 IG head | bf16 / fp32 (final) |")
print("|---|---:|---:|---:|---:|---:|")
for (s, e, f1, i1), (_, _, f2, i2) in zip(a, b):
    print(f"| {s}–{e} | {f1:.4f} | {i1:.4f} | {f2:.4f} | {i2:.4f} | {f2 / f1:.3f} |")
PY
