#!/usr/bin/env bash
# The test command: installs missing build dependencies, builds tessera (with its CUDA backend when
# nvcc is present; CUDA tests skip without a GPU, each printing why), runs every test, then builds
# the CPU code with AddressSanitizer + UndefinedBehaviorSanitizer and runs the tests again, then
# builds the libFuzzer targets of the file readers with clang and runs each for a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --tests
jobs=$(nproc)

echo "== release build (TESSERA_CUDA=AUTO)"
cmake --preset release >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== AddressSanitizer + UBSan build (CPU)"
cmake --preset asan >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -E install_consumer
echo "== the readers under libFuzzer (clang, ASan + UBSan): a short run of each target"
cmake --preset fuzz >/dev/null
cmake --build build-fuzz -j "$jobs"
scripts/fuzz.sh --seconds 5
echo "== all tests passed"
