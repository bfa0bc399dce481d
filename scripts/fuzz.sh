#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (built by the `fuzz` preset into build-fuzz/) on the readers:
# .npy, safetensors, COCO instances, COCO results (and the ranks' binary results), images, TIFF.
#   scripts/fuzz.sh [--seconds N | --runs N] [target...]
# Each target starts from a seed corpus of tests/data's files (copied; the corpus grows in
# build-fuzz/corpus/<target>). A finding (crash, sanitizer report, an exception other than
# tessera::Error, a hang over 30 s, one allocation over 512 MB) fails the run and leaves the input
# in build-fuzz/findings/<target>/. The summary line gives each target's executions.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-max_total_time=10)
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    --runs) limit=(-runs="$2"); shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(npy safetensors coco coco_results image tiff)

seeds() {
  case "$1" in
    npy) ls tests/data/npy/*.npy tests/data/coco/*.npy ;;
    safetensors) ls tests/data/safetensors/*.safetensors ;;
    coco) ls tests/data/coco/*.json tests/data/coco_eval/gt.json ;;
    coco_results) ls tests/data/coco_eval/results.json ;;
    # The files a 2 KB input can mutate from (the 4096 x 4096 masks are test fixtures, not seeds).
    tiff) find tests/data/tiff -name "*.tif" -size -2049c | sort ;;
    image) find tests/data/images tests/data/coco \( -name '*.png' -o -name '*.jpg' -o -name '*.bmp' \) -size -2049c | sort ;;
  esac
}

rc=0
summary=""
for t in "${targets[@]}"; do
  bin=build-fuzz/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz.sh: $bin is missing (cmake --preset fuzz && cmake --build build-fuzz)" >&2; exit 1; }
  corpus=build-fuzz/corpus/$t findings=build-fuzz/findings/$t
  mkdir -p "$corpus" "$findings"
  for f in $(seeds "$t"); do cp -n "$f" "$corpus/" 2>/dev/null || true; done
  # Images: inputs of at most 2 KB. A PNG's data bounds its pixels at 1032 x 8 a byte (deflate's
  # densest coding, 1 bit a pixel): a legitimate 2 KB 1-bit PNG holds 17 M pixels, 270 MB as float
  # RGBA and ~12 s for the three decodes here; larger inputs would only add size and time.
  max_len=()
  { [ "$t" = image ] || [ "$t" = tiff ]; } && max_len=(-max_len=2048)
  log=build-fuzz/fuzz_$t.log
  start=$(date +%s)
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       "$bin" "${limit[@]}" "${max_len[@]}" -timeout=30 -malloc_limit_mb=512 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$findings/" "$corpus" >"$log" 2>&1; then
    status=ok
  else
    status=FINDING
    rc=1
    echo "== fuzz_$t: finding; log $log, inputs in $findings/" >&2
    grep -E "ERROR|finding|SUMMARY|==[0-9]+==|out-of-memory|timeout" "$log" | head -20 >&2 || true
  fi
  runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
  line="fuzz_$t: $status, $runs executions in $(($(date +%s) - start)) s, corpus $(ls "$corpus" | wc -l) files"
  echo "$line"
  summary+="$line"$'\n'
done
echo "== fuzz summary"
printf '%s' "$summary"
exit $rc
