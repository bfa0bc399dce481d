#!/usr/bin/env bash
# The OPENBLAS_CORETYPE to set for this CPU, or nothing when OpenBLAS's own choice fits (or the
# variable is set already). OpenBLAS picks its kernels from the CPU model when it loads; 0.3.21
# (Debian 12's) does not know newer models and falls back to its SSE3 "Prescott" kernels (family 6
# model 207: a 1024^3 SGEMM 4.8x slower than with "SkylakeX"). The rule is the library's
# cpu_blas_suggested_coretype() (kernels/cpu/matmul.cpp), which warns at run time.
# PROGRAM: any program linked with OpenBLAS that accepts --help.
#   scripts/openblas_coretype.sh PROGRAM          prints it
#   source scripts/openblas_coretype.sh PROGRAM   exports it and says so (test.sh, run_main.sh)
openblas_coretype() {
  [ -z "${OPENBLAS_CORETYPE:-}" ] || return 0
  local core flags
  core=$(OPENBLAS_VERBOSE=2 "$1" --help 2>&1 | sed -n 's/^Core: //p' | head -n 1 || true)
  [ -n "$core" ] || return 0
  flags=" $(grep -m 1 '^flags' /proc/cpuinfo || true) "
  case "$core" in
    SkylakeX | Cooperlake | SapphireRapids | Zen) ;;
    Haswell) [[ "$flags" != *" avx512f "* ]] || echo SkylakeX ;;
    *) if [[ "$flags" == *" avx512f "* ]]; then echo SkylakeX; elif [[ "$flags" == *" avx2 "* ]]; then echo Haswell; fi ;;
  esac
  return 0
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  openblas_coretype "$1"
else
  _core=$(openblas_coretype "$1")
  if [ -n "$_core" ]; then
    export OPENBLAS_CORETYPE=$_core
    echo "OPENBLAS_CORETYPE=$_core (OpenBLAS does not know this CPU model; scripts/openblas_coretype.sh)"
  fi
  unset _core
fi
