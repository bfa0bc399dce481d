#!/usr/bin/env bash
# Prints the OPENBLAS_CORETYPE to set for this CPU, or nothing when OpenBLAS's own choice fits (or
# the variable is set already). OpenBLAS picks its kernels from the CPU model when it loads; 0.3.21
# (Debian 12's) does not know newer models and falls back to its SSE3 "Prescott" kernels (family 6
# model 207: a 1024^3 SGEMM 4.8x slower than with "SkylakeX"). The rule is the library's
# cpu_blas_suggested_coretype() (kernels/cpu/matmul.cpp), which warns at run time.
# Usage: scripts/openblas_coretype.sh PROGRAM   (any program linked with OpenBLAS that accepts --help)
set -euo pipefail
[ -n "${OPENBLAS_CORETYPE:-}" ] && exit 0
core=$(OPENBLAS_VERBOSE=2 "$1" --help 2>&1 | sed -n 's/^Core: //p' | head -n 1 || true)
[ -n "$core" ] || exit 0
flags=$(grep -m 1 '^flags' /proc/cpuinfo || true)
has() { [[ " $flags " == *" $1 "* ]]; }
case "$core" in
  SkylakeX | Cooperlake | SapphireRapids | Zen) exit 0 ;;
  Haswell) has avx512f && echo SkylakeX ;;
  *) if has avx512f; then echo SkylakeX; elif has avx2; then echo Haswell; fi ;;
esac
exit 0
