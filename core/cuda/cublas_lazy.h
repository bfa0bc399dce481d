// cuBLAS, loaded when the first matrix product on a GPU needs it. Linking it the usual way makes
// every process that uses tessera map and relocate cuBLASLt (540 MB) at start-up: 0.1 s and 220 MB
// of page faults before main(), even for a run that never touches a GPU (every CPU test, every
// `predict --help`). CUDA builds only; the functions are cuBLAS's, under the same signatures.
#pragma once

#include <cublas_v2.h>

namespace tessera::cuda {

struct CublasApi {
  decltype(&::cublasCreate_v2) create;
  decltype(&::cublasSetStream_v2) set_stream;
  decltype(&::cublasSetMathMode) set_math_mode;
  decltype(&::cublasSgemmStridedBatched) sgemm_strided_batched;
  decltype(&::cublasDgemmStridedBatched) dgemm_strided_batched;
  // cublasGemmStridedBatchedEx (the header also declares a C++ overload, so spelled out here):
  // half and bfloat16 operands with float32 compute, and float32 with TF32.
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                            const void*, const void*, cudaDataType, int, long long, const void*,
                                            cudaDataType, int, long long, const void*, void*, cudaDataType, int, long long,
                                            int, cublasComputeType_t, cublasGemmAlgo_t);
};

// Loads libcublas.so.<major> on the first call (the executable's run path, LD_LIBRARY_PATH, then
// the CUDA toolkit's folder it was built against); an Error naming the library when it is missing.
const CublasApi& cublas();

}  // namespace tessera::cuda
