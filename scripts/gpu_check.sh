#!/usr/bin/env bash
# The GPU suite: CUDA build, every test with TESSERA_REQUIRE_CUDA=1 (CUDA tests must run, not skip),
# the CUDA tests under compute-sanitizer memcheck, and the benchmarks next to PyTorch; a summary
# table last.
#
#   scripts/gpu_check.sh                 build here (needs nvcc and the Debian build deps), then run
#   scripts/gpu_check.sh --build-only    build into gpu-bundle/ (binaries + the shared libraries a
#                                        bare GPU machine lacks) to carry to a machine with a GPU
#   scripts/gpu_check.sh --prebuilt      run from a carried gpu-bundle/ (no toolchain needed)
#
# Options: --arch N (CUDA architecture, default 90), --out DIR (logs; default $OUT or gpu-check-out).
set -uo pipefail
cd "$(dirname "$0")/.."
mode=all
arch=90
out="${OUT:-gpu-check-out}"
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) mode=build ;;
    --prebuilt) mode=run ;;
    --arch) arch="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
bundle=gpu-bundle

build() {
  scripts/install_deps.sh || exit 1
  cmake --preset gpu-carry -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null || exit 1
  cmake --build build-gpu -j "$(nproc)" --target tessera_tests tessera_bench || exit 1
  rm -rf "$bundle" && mkdir -p "$bundle/bin" "$bundle/lib"
  cp build-gpu/tests/tessera_tests build-gpu/bench/tessera_bench "$bundle/bin/"
  strip --strip-unneeded "$bundle/bin/"* 2>/dev/null || true
  # Shared libraries a GPU image without the Debian dev packages may lack; the CUDA libraries
  # (cudart, cuBLAS, cuDNN) are the target's own.
  for bin in "$bundle"/bin/*; do
    ldd "$bin" | awk '/=> \//{print $3}' | grep -E 'libgfortran|libquadmath|libbenchmark|libgomp|libstdc\+\+|libgcc_s' || true
  done | sort -u | while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
  cp -r scripts "$bundle/" 2>/dev/null || true
  du -sh "$bundle"
}

run() {
  mkdir -p "$out"
  local libs="$PWD/$bundle/lib"
  # cuDNN and cuBLAS: the CUDA install, or the nvidia-* Python packages' lib folders.
  local pylibs
  pylibs=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = []
for base in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += glob.glob(os.path.join(base, "nvidia", "*", "lib"))
print(":".join(sorted(set(dirs))))
PY
)
  export LD_LIBRARY_PATH="$libs:${pylibs}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

  echo "== tests (TESSERA_REQUIRE_CUDA=1)"
  TESSERA_REQUIRE_CUDA=1 "$bundle/bin/tessera_tests" --gtest_brief=1 >"$out/tests.log" 2>&1
  tests_rc=$?
  tail -5 "$out/tests.log"

  echo "== CUDA tests under compute-sanitizer memcheck"
  if command -v compute-sanitizer >/dev/null; then
    TESSERA_REQUIRE_CUDA=1 compute-sanitizer --tool memcheck --error-exitcode 99 \
      "$bundle/bin/tessera_tests" --gtest_brief=1 --gtest_filter='*Cuda*:*CUDA*' >"$out/memcheck.log" 2>&1
    memcheck_rc=$?
    tail -4 "$out/memcheck.log"
  else
    memcheck_rc=-1
    echo "compute-sanitizer not found" | tee "$out/memcheck.log"
  fi

  echo "== benchmarks"
  "$bundle/bin/tessera_bench" --benchmark_format=json --benchmark_out="$out/tessera_bench.json" \
    --benchmark_out_format=json >"$out/bench.log" 2>&1
  bench_rc=$?
  python3 scripts/compare_torch.py --tessera-json "$out/tessera_bench.json" --device cuda >"$out/compare.txt" 2>&1
  compare_rc=$?

  echo
  echo "================ gpu_check summary ================"
  printf '%-28s %s\n' "gpu" "$(head -1 "$out/gpu.txt")"
  printf '%-28s %s\n' "tests (REQUIRE_CUDA=1)" "$( [ $tests_rc -eq 0 ] && echo PASS || echo "FAIL rc=$tests_rc") $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/tests.log" | tr '\n' ' ')"
  printf '%-28s %s\n' "compute-sanitizer memcheck" "$( [ $memcheck_rc -eq 0 ] && echo "clean" || echo "rc=$memcheck_rc") $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)"
  printf '%-28s %s\n' "benchmarks" "$( [ $bench_rc -eq 0 ] && echo ok || echo "FAIL rc=$bench_rc")"
  cat "$out/compare.txt"
  [ $tests_rc -eq 0 ] && [ $memcheck_rc -eq 0 ] && [ $bench_rc -eq 0 ]
}

case "$mode" in
  build) build ;;
  run) run ;;
  all) build && run ;;
esac
