// Row-major GEMM for the CPU kernels: C = alpha * op(A) @ op(B) + beta * C through OpenBLAS.
//
// OpenBLAS is not linked: kernels/cpu/blas.cpp loads it with dlopen on first use, after choosing
// its kernels from what this CPU reports (OpenBLAS picks them from the CPU model when it loads, and
// an OpenBLAS older than the CPU falls back to SSE3 kernels several times slower). cblas.h is
// included for the prototypes only.
#pragma once

#include <cblas.h>

#include <string>
#include <type_traits>

namespace tessera::blas {

struct OpenBlas {
  decltype(&cblas_sgemm) sgemm = nullptr;
  decltype(&cblas_dgemm) dgemm = nullptr;
  decltype(&openblas_get_corename) corename = nullptr;
  std::string path;       // the file loaded
  std::string coretype;   // what tessera set OPENBLAS_CORETYPE to while loading ("" if nothing)
  bool preloaded = false; // the process had loaded it before tessera could choose
};

// Loads OpenBLAS on the first call (thread-safe); an Error names what is missing.
const OpenBlas& openblas();

// The OPENBLAS_CORETYPE tessera asks for on this CPU: "SkylakeX" with AVX-512 (F, BW, DQ, VL),
// "Haswell" with AVX2 and FMA, else "" (OpenBLAS's own choice). A user's OPENBLAS_CORETYPE wins.
std::string best_coretype();

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  const OpenBlas& lib = openblas();
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    lib.sgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
  } else {
    lib.dgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
  }
}

}  // namespace tessera::blas
