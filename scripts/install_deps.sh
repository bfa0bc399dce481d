#!/usr/bin/env bash
# Installs what building tessera needs, from Debian's packages, when it is missing.
# As root it runs apt-get; otherwise it names the missing packages and stops.
#   --tests  also what the tests need: Debian's PyTorch and torchvision (python3-torchvision, which
#            brings python3-torch and numpy), from which the Mask R-CNN parity test exports its
#            reference model at test time; clang with its libFuzzer and OpenMP runtimes for the
#            fuzz targets (scripts/fuzz.sh).
set -euo pipefail

packages=(cmake ninja-build g++ libopenblas-openmp-dev libgtest-dev libbenchmark-dev libstb-dev libjpeg-dev libtiff-dev nlohmann-json3-dev
          libopenmpi-dev openmpi-bin)
if [ "${1:-}" = "--tests" ]; then
  packages+=(python3-torchvision clang libclang-rt-dev libomp-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "tessera needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null || {
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
