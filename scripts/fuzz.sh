#!/usr/bin/env bash
# Coverage-guided fuzzing of Loom's loaders with libFuzzer (Swift's -sanitize=fuzzer, plus
# AddressSanitizer). Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Each target starts from its committed corpus in Tests/Fuzz/corpus/<target>/ and adds what it finds
# to a scratch copy under .build-fuzz/; crashes are written to .build-fuzz/crashes/<target>/ and the
# script exits 1. Prints each target's executions per second and coverage (libFuzzer's cov/ft).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzSafeTensors FuzzIDX FuzzPlan FuzzIRText FuzzCheckpointMetadata FuzzTorchCheckpoint FuzzVAEWeights FuzzImage)
bash scripts/install-deps.sh >&2
scratch=.build-fuzz
swift build --package-path Tests/Fuzz --scratch-path "$scratch/build" -c debug \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld >&2
bin=$(swift build --package-path Tests/Fuzz --scratch-path "$scratch/build" -c debug --show-bin-path)
status=0
for target in "${targets[@]}"; do
  corpus="$scratch/corpus/$target"
  crashes="$scratch/crashes/$target"
  mkdir -p "$corpus" "$crashes"
  cp -n Tests/Fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  log="$scratch/$target.log"
  # ZIPFoundation's archives (its in-memory file and Foundation's path conversion) leak about 1 KB
  # per archive opened; leak detection is off for the target that opens one per input, so that
  # only crashes, hangs and memory errors count there.
  leaks=1
  [ "$target" = FuzzTorchCheckpoint ] && leaks=0
  if ! ASAN_OPTIONS="detect_leaks=$leaks" "$bin/$target" "$corpus" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -detect_leaks="$leaks" \
       -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1; then
    status=1
    echo "$target: FAILED, see $log and $crashes/"
  fi
  runs=$(grep -E "^stat::number_of_executed_units" "$log" | awk '{print $2}')
  rate=$(grep -E "^stat::average_exec_per_sec" "$log" | awk '{print $2}')
  cov=$(grep -E "#[0-9]+.*(DONE|INITED|NEW|REDUCE|pulse)" "$log" | tail -n 1 | grep -oE "cov: [0-9]+ ft: [0-9]+" || true)
  echo "$target: ${runs:-?} runs in ${seconds} s, ${rate:-?} exec/s, ${cov:-coverage ?}, corpus $(ls "$corpus" | wc -l) files"
done
exit "$status"
