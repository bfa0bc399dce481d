// cuBLAS through dlopen on first use (see cublas_lazy.h).
#include "core/cuda/cublas_lazy.h"

#include <string>

#include "core/dynlib.h"

namespace tessera::cuda {

const CublasApi& cublas() {
  static const CublasApi api = [] {
#ifdef TESSERA_CUBLAS_DIR
    const char* fallback = TESSERA_CUBLAS_DIR;
#else
    const char* fallback = nullptr;
#endif
    void* lib = open_library("libcublas.so." + std::to_string(CUBLAS_VER_MAJOR), fallback, "cuBLAS, for matrix products on the GPU",
                             "the CUDA toolkit's lib64, or the nvidia-cublas Python package's lib");
    CublasApi a{};
    bind_symbol(lib, "cublasCreate_v2", a.create, "cuBLAS");
    bind_symbol(lib, "cublasSetStream_v2", a.set_stream, "cuBLAS");
    bind_symbol(lib, "cublasSetMathMode", a.set_math_mode, "cuBLAS");
    bind_symbol(lib, "cublasSgemmStridedBatched", a.sgemm_strided_batched, "cuBLAS");
    bind_symbol(lib, "cublasDgemmStridedBatched", a.dgemm_strided_batched, "cuBLAS");
    bind_symbol(lib, "cublasGemmStridedBatchedEx", a.gemm_strided_batched_ex, "cuBLAS");
    return a;
  }();
  return api;
}

}  // namespace tessera::cuda
