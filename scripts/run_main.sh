#!/usr/bin/env bash
# The main job, until the U-Net driver lands: build tessera and run its benchmark suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build build -j "$(nproc)" --target tessera_bench
build/bench/tessera_bench "$@"
