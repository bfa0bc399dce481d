#!/usr/bin/env bash
# The device check: everything tessera can only show on a GPU, sized for a short loan of a machine
# that reaches nothing outside (15 minutes of device time, 64 MiB carried, 10 minutes a command).
#
# Here (no GPU needed):
#   scripts/gpu_check.sh --build-only          build the gpu-carry preset (CUDA on, -march=x86-64-v3)
#                                              and pack it: gpu-bundle.tar.xz (at most 48 MiB)
#   scripts/gpu_check.sh --pack-from DIR       pack an existing build folder instead (CI packs `build`)
#   scripts/gpu_check.sh --rehearse            unpack the bundle into an empty temporary folder, away
#                                              from the checkout, and run its CPU part from there
# On the GPU machine (carry gpu-bundle.tar.xz; no toolchain needed):
#   scripts/gpu_check.sh --prebuilt            unpack and run the phases below, then a summary table
#
# Phases, most valuable first, each under its own time limit, each with a log in $OUT (or
# gpu-check-out/): env (nvidia-smi, driver, CUDA, cuDNN, PyTorch), tests (every test of the bundle
# with TESSERA_REQUIRE_CUDA=1: CUDA tests fail instead of skipping; the whole-model CUDA tests and
# the Mask R-CNN parity against the device's own torchvision included), drivers (train, predict
# and evaluate end to end with --device cuda), compare (tessera_bench's CUDA cases beside the
# device's PyTorch, TF32 off on both sides), sanitize (compute-sanitizer memcheck and racecheck on
# the CUDA tests). Options: --bundle FILE, --arch N (default 90), --out DIR, --max-mib N (48),
# --xz-level N (6; CI's rehearsal packs at 1: four times faster and larger, so a bundle within the
# limit at 1 is within it at 6).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
mode=""
arch=90
bundle="$repo/gpu-bundle.tar.xz"
pack_dir=""
out="${OUT:-$repo/gpu-check-out}"
max_mib=48
xz_level=6
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) mode=build ;;
    --pack-from) mode=pack; pack_dir="$2"; shift ;;
    --rehearse) mode=rehearse ;;
    --prebuilt) mode=run ;;
    --bundle) bundle="$2"; shift ;;
    --arch) arch="$2"; shift ;;
    --out) out="$2"; shift ;;
    --max-mib) max_mib="$2"; shift ;;
    --xz-level) xz_level="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$mode" ] || { echo "gpu_check.sh: say --build-only, --pack-from DIR, --rehearse or --prebuilt (see --help)" >&2; exit 2; }

binaries=(tests/tessera_tests tests/tessera_parity_tests drivers/tessera_driver_tests bench/tessera_bench
          drivers/train_unet drivers/train_maskrcnn drivers/predict drivers/evaluate)
# Libraries the device's own system or CUDA install provides: never carried. Everything else a
# binary loads (OpenBLAS, libgfortran, libgomp, libstdc++, cudart, ...) is carried in lib/.
system_libs='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libcuda\.|libcublas|libcublasLt|libcudnn|libnvidia)'

# ---------------------------------------------------------------------------------------- packing
pack() {
  local build="$1" stage
  stage=$(mktemp -d)/tessera-gpu
  mkdir -p "$stage/bin" "$stage/lib" "$stage/scripts"
  for b in "${binaries[@]}"; do
    [ -x "$build/$b" ] || { echo "gpu_check.sh: $build/$b is missing (build the tests, bench and drivers first)" >&2; return 1; }
    cp "$build/$b" "$stage/bin/"
  done
  strip --strip-unneeded "$stage"/bin/* 2>/dev/null || true
  for b in "$stage"/bin/*; do ldd "$b"; done | awk '/=> \// {print $1, $3}' | sort -u | while read -r name path; do
    if ! [[ "$name" =~ $system_libs ]]; then cp -L "$path" "$stage/lib/$name"; fi
  done
  # OpenBLAS is loaded with dlopen (kernels/cpu/blas.cpp), so ldd does not list it: carry the
  # build's own and what it needs; tess() points TESSERA_OPENBLAS at it.
  local openblas
  openblas=$(sed -n 's/^TESSERA_OPENBLAS_LIBRARY:FILEPATH=//p' "$build/CMakeCache.txt")
  openblas="$(dirname "$openblas")/libopenblas.so.0"
  [ -f "$openblas" ] || { echo "gpu_check.sh: $openblas is missing" >&2; return 1; }
  cp -L "$openblas" "$stage/lib/libopenblas.so.0"
  ldd "$openblas" | awk '/=> \// {print $1, $3}' | while read -r name path; do
    if ! [[ "$name" =~ $system_libs ]] && [ ! -f "$stage/lib/$name" ]; then cp -L "$path" "$stage/lib/$name"; fi
  done
  cp -r "$repo/tests/data" "$stage/data"
  cp "$repo"/scripts/{gpu_check.sh,compare_torch.py,export_torchvision_maskrcnn.py} "$stage/scripts/"
  { echo "commit $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "built from $build on $(date -u +%Y-%m-%dT%H:%MZ), $(grep -m1 'CMAKE_CUDA_ARCHITECTURES:' "$build/CMakeCache.txt" 2>/dev/null)"
    echo "carried libraries: $(ls "$stage/lib" | tr '\n' ' ')"; } >"$stage/MANIFEST"
  mkdir -p "$(dirname "$bundle")"
  tar -C "$(dirname "$stage")" -cf - tessera-gpu | xz -T0 "-$xz_level" >"$bundle.tmp" && mv "$bundle.tmp" "$bundle"
  rm -rf "$(dirname "$stage")"
  local bytes
  bytes=$(stat -c %s "$bundle")
  awk -v b="$bytes" -v f="$bundle" -v m="$max_mib" 'BEGIN { printf "bundle %s: %.1f MiB (limit %s MiB)\n", f, b / 1048576, m }'
  if [ "$bytes" -gt $((max_mib * 1048576)) ]; then
    echo "gpu_check.sh: the bundle is over $max_mib MiB: it would not travel with a device loan" >&2
    return 1
  fi
}

build() {
  "$repo/scripts/install_deps.sh" || return 1
  (cd "$repo" && cmake --preset gpu-carry -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null) || return 1
  cmake --build "$repo/build-gpu" -j "$(nproc)" --target tessera_tests tessera_parity_tests tessera_driver_tests \
    tessera_bench train_unet train_maskrcnn predict evaluate || return 1
  pack "$repo/build-gpu"
}

# -------------------------------------------------------------------------------------- unpacking
unpack() {  # sets $root to the unpacked bundle
  [ -f "$bundle" ] || { echo "gpu_check.sh: no bundle at $bundle (make it with --build-only)" >&2; exit 1; }
  local dir
  dir=$(mktemp -d /tmp/tessera-gpu-check.XXXXXX)
  xz -dc "$bundle" | tar -C "$dir" -xf - || { echo "gpu_check.sh: $bundle does not unpack" >&2; exit 1; }
  root="$dir/tessera-gpu"
  # Our binaries, and only they, see the carried libraries (the device's Python keeps its own).
  cuda_libs=$(python3 - <<'PY' 2>/dev/null
import glob, os, site, sys
dirs = []
for base in site.getsitepackages() + [site.getusersitepackages()] + sys.path:
    dirs += glob.glob(os.path.join(base, "nvidia", "*", "lib")) + glob.glob(os.path.join(base, "nvidia", "cu*", "lib"))
print(":".join(sorted(set(d for d in dirs if os.path.isdir(d)))))
PY
)
  tlib="$root/lib:${cuda_libs}:/usr/local/cuda/lib64"
  export TESSERA_TEST_DATA="$root/data" TESSERA_DRIVER_DIR="$root/bin" OMP_WAIT_POLICY=PASSIVE
}
tess() { LD_LIBRARY_PATH="$tlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" TESSERA_OPENBLAS="$root/lib/libopenblas.so.0" "$@"; }

# One phase: a name, a time limit in seconds, a command; its output in $out/<name>.log, and a row
# of the summary table.
summary=()
phase() {
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS rc
  echo "== $name (limit ${limit}s)"
  # The phase functions run in a child bash (timeout cannot run a function): they and the
  # variables they read are exported.
  export root tlib out fixture export_pid
  export -f tess sharded phase_env phase_tests phase_drivers phase_half phase_compare phase_memcheck phase_racecheck phase_libraries phase_relocated
  timeout --kill-after=10 "$limit" bash -c '"$@"' phase "$@" >"$out/$name.log" 2>&1
  rc=$?
  local verdict="ok"
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && verdict="TIMEOUT"
  [ $rc -ne 0 ] && [ "$verdict" = ok ] && verdict="FAIL rc=$rc"
  local log="$out/$name.log" detail
  detail=$(awk '/^\[  PASSED  \] [0-9]+ test/ {p += $4} /^\[  FAILED  \] [0-9]+ test/ {f += $4}
                /^\[  SKIPPED \] [0-9]+ test/ {k += $4}
                END { if (p + f + k) printf "%d passed, %d failed, %d skipped; ", p, f, k }' "$log")
  detail+=$(grep -E 'ERROR SUMMARY|^phase: ' "$log" | sed 's/^phase: //; s/^========= //' | sort -u | tr '\n' ';' | cut -c1-160)
  summary+=("$(printf '%-10s %-12s %4ds  %s' "$name" "$verdict" $((SECONDS - t0)) "$detail")")
  tail -3 "$out/$name.log"
  return $rc
}

# gtest binary in shards run side by side (the device has 16 cores): each shard a process with two
# threads; the shard logs are concatenated.
sharded() {
  local bin="$1" shards="$2"; shift 2
  local pids=() rc=0 i
  for ((i = 0; i < shards; i++)); do
    GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i TESSERA_NUM_THREADS=2 tess "$bin" --gtest_brief=1 "$@" \
      >"$out/shard.$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || rc=1; cat "$out/shard.$i.log"; rm -f "$out/shard.$i.log"; done
  return $rc
}

# ------------------------------------------------------------------------------------- the phases
phase_env() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || return 1
  nvidia-smi | head -4 | tail -2
  python3 -c 'import torch, torchvision; print("phase: torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "torchvision", torchvision.__version__)' || true
  cat "$root/MANIFEST"
  echo "libraries tessera loads:"
  tess ldd "$root/bin/tessera_tests" | grep -E 'cudart|cublas|cudnn|not found'
  ! tess ldd "$root/bin/tessera_tests" | grep -q 'not found'
}

phase_tests() {
  local rc=0
  TESSERA_REQUIRE_CUDA=1 sharded "$root/bin/tessera_tests" 8 || rc=1
  while kill -0 "$export_pid" 2>/dev/null; do sleep 1; done  # the torchvision export (started first)
  TESSERA_REQUIRE_CUDA=1 TESSERA_MASKRCNN_FIXTURE="$fixture" tess "$root/bin/tessera_parity_tests" --gtest_brief=1 || rc=1
  return $rc
}

phase_drivers() {
  TESSERA_REQUIRE_CUDA=1 tess "$root/bin/tessera_driver_tests" --gtest_brief=1
}

# Half precision on the GPU: cuDNN's and cuBLAS's float16/bfloat16 kernels against the CPU's, the
# TF32 switch, autocast; then the U-Net under bfloat16 autocast against its float32 time.
phase_half() {
  TESSERA_REQUIRE_CUDA=1 tess "$root/bin/tessera_tests" --gtest_brief=1 --gtest_filter='HalfCuda.*:Autocast*:Half*' || return 1
  tess "$root/bin/tessera_bench" --benchmark_filter='BM_UNetInference(Bf16)?/cuda:1/width:64' --benchmark_min_time=0.2s
}

phase_compare() {
  tess "$root/bin/tessera_bench" --benchmark_filter='cuda:1' --benchmark_repetitions=3 \
    --benchmark_out="$out/tessera_bench.json" --benchmark_out_format=json >/dev/null || return 1
  python3 "$root/scripts/compare_torch.py" --device cuda --tessera-json "$out/tessera_bench.json"
}

# compute-sanitizer on the CUDA tests of the op table and runtime. The deliberate out-of-memory
# request is left out: memcheck reports the failed cudaMalloc it makes on purpose as an API error.
phase_memcheck() {
  command -v compute-sanitizer >/dev/null || { echo "phase: compute-sanitizer not found"; return 1; }
  TESSERA_REQUIRE_CUDA=1 tess compute-sanitizer --tool memcheck --error-exitcode 99 "$root/bin/tessera_tests" \
    --gtest_brief=1 --gtest_filter='*CudaMatchesCpu*:Cuda*.*:NmsCuda.*:PhiloxCuda.*:DropoutCuda.*:-CudaAllocator.OutOfMemoryIsAClearError'
}
# racecheck: shared-memory hazards (the reductions, softmax rows, NMS tiles, batch-norm moments).
phase_racecheck() {
  command -v compute-sanitizer >/dev/null || { echo "phase: compute-sanitizer not found"; return 1; }
  TESSERA_REQUIRE_CUDA=1 tess compute-sanitizer --tool racecheck --error-exitcode 99 "$root/bin/tessera_tests" \
    --gtest_brief=1 --gtest_filter='*CudaMatchesCpu*:NmsCuda.*'
}

# The binaries honour the bundle's paths, not the ones they were compiled with: pointed at a
# folder that does not exist, a test that reads fixtures and one that runs the drivers must fail.
phase_relocated() {
  if TESSERA_TEST_DATA="$root/nowhere" tess "$root/bin/tessera_tests" --gtest_brief=1 --gtest_filter='Npy.*' >/dev/null 2>&1; then
    echo "phase: the tests ignored TESSERA_TEST_DATA"; return 1
  fi
  if TESSERA_DRIVER_DIR="$root/nowhere" tess "$root/bin/tessera_driver_tests" --gtest_brief=1 --gtest_filter='Drivers.TrainUnet*' >/dev/null 2>&1; then
    echo "phase: the driver tests ignored TESSERA_DRIVER_DIR"; return 1
  fi
  echo "phase: fixtures and drivers are found through the bundle's paths"
}

phase_libraries() {  # every library a carried binary loads is found (cuBLAS and cuDNN: on the device)
  local missing
  missing=$(for b in "$root"/bin/*; do tess ldd "$b" | grep 'not found' | grep -vE 'libcublas|libcudnn'; done | sort -u)
  [ -z "$missing" ] || { echo "not found: $missing"; return 1; }
  echo "phase: every carried binary finds its libraries"
}

run_device() {
  unpack
  mkdir -p "$out"
  fixture="$root/maskrcnn_fixture"
  # The parity fixture comes from the device's own torchvision, exported while the tests run.
  python3 "$root/scripts/export_torchvision_maskrcnn.py" --out "$fixture" >"$out/export.log" 2>&1 &
  export_pid=$!
  local rc=0
  # The limits add up to 8 minutes: the device run must fit one 10-minute command of a loan.
  phase env 30 phase_env || rc=1
  phase tests 150 phase_tests || rc=1
  phase drivers 75 phase_drivers || rc=1
  phase half 40 phase_half || rc=1
  phase compare 90 phase_compare || rc=1
  phase memcheck 60 phase_memcheck || rc=1
  phase racecheck 45 phase_racecheck || rc=1
  print_summary
  return $rc
}

# The CPU part from the unpacked bundle, with the checkout out of reach: what a device run does
# first, minus the GPU. Run by ctest (gpu_bundle_rehearsal) on every build with CUDA.
rehearse() {
  unpack
  mkdir -p "$out"
  cd "$root" || exit 1
  local rc=0
  phase libraries 30 phase_libraries || rc=1
  phase tests 300 tess "$root/bin/tessera_tests" --gtest_brief=1 \
    --gtest_filter='Npy*:Safetensors*:Image*:Coco*:TorchFixtures*:UNet.MatchesPyTorch*:*PerElementBodyMatchesCpuPath/relu*' || rc=1
  phase drivers 300 tess "$root/bin/tessera_driver_tests" --gtest_brief=1 --gtest_filter='Drivers.TrainUnet*' || rc=1
  phase relocated 60 phase_relocated || rc=1
  phase bench 120 tess "$root/bin/tessera_bench" --benchmark_filter='BM_Add' --benchmark_min_time=0.01 || rc=1
  phase scripts 60 python3 "$root/scripts/compare_torch.py" --help || rc=1
  print_summary
  rm -rf "$(dirname "$root")"
  return $rc
}

print_summary() {
  echo
  echo "================ gpu_check summary ($mode) ================"
  printf '%s\n' "${summary[@]}"
  [ -f "$out/compare.log" ] && grep -E '^(BM_|benchmark|PyTorch|TF32|tessera:)' "$out/compare.log"
  echo "logs: $out"
}

case "$mode" in
  build) build ;;
  pack) pack "$(cd "$pack_dir" && pwd)" ;;
  rehearse) rehearse ;;
  run) run_device ;;
esac
