#!/usr/bin/env bash
# Loom against PyTorch, side by side in one run: builds Loom (release), then runs
# Benchmarks/side_by_side.py with the arguments given (see --help). PyTorch is optional.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product loom >&2
exec python3 Benchmarks/side_by_side.py "$@"
