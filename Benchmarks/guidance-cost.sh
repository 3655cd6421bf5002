#!/usr/bin/env bash
# Cost of one compiled sampler step per guidance mode on DiT-S/2 + IG head (32×32×4 latents, batch 8):
# none (the plan without the IG head's launches), IG, CFG, IG+CFG, and autoguidance with a 6-block guide.
# Modes are timed in interleaved rounds in one process, so the ratios are side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product loom >/dev/null
threads="${LOOM_THREADS:-$(nproc)}"
.build/release/loom guidance-cost dit --preset S --patch 2 --ig-layer 4 --batch 8 --repeats "${REPEATS:-9}" --threads "$threads"
