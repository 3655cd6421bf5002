#!/usr/bin/env bash
# Set-up plus Loom's whole test suite (XCTest) and the golden suite on every ISA path of this CPU.
# Ends with a plain "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
swift test --skip-build --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?

# The golden suite through the CLI on every instruction-set path this CPU can run (LOOM_ISA caps
# the kernel choice), in fp32 and bf16: one check per (ISA, precision), plus the VAE per ISA.
levels=(avx2)
grep -qw avx512f /proc/cpuinfo && levels+=(avx512)
grep -qw amx_bf16 /proc/cpuinfo && levels+=(amx)
isa_passed=0
isa_failed=0
for isa in "${levels[@]}"; do
  # The convolution paths under this cap (Winograd needs AVX-512; capped at AVX2 it falls back).
  if LOOM_ISA=$isa swift test --skip-build --disable-swift-testing --filter "VAEGoldenTests|ConvolutionKernelTests" >"$log.isa" 2>&1; then
    isa_passed=$((isa_passed + 1))
    echo "VAE goldens and convolutions, LOOM_ISA=$isa: passed"
  else
    isa_failed=$((isa_failed + 1))
    status=1
    echo "VAE goldens and convolutions, LOOM_ISA=$isa: FAILED"
    cat "$log.isa"
  fi
  for precision in fp32 bf16; do
    if LOOM_ISA=$isa .build/debug/loom check-golden Tests/Fixtures/*.safetensors --compiled --precision "$precision" >"$log.isa" 2>&1; then
      isa_passed=$((isa_passed + 1))
      echo "golden suite, LOOM_ISA=$isa, $precision: $(tail -n 1 "$log.isa")"
    else
      isa_failed=$((isa_failed + 1))
      status=1
      echo "golden suite, LOOM_ISA=$isa, $precision: FAILED"
      cat "$log.isa"
    fi
  done
done
rm -f "$log.isa"

summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
  total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
  failed=$(echo "$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
  echo "$((total - failed + isa_passed)) passed, $((failed + isa_failed)) failed"
fi
exit "$status"
