#!/usr/bin/env bash
# Loom's main job on the embedded default: set-up, release build, then `loom demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product loom
.build/release/loom demo "$@"
