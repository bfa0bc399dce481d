// Status checks for the CUDA runtime, cuBLAS and cuDNN, and the after-launch check.
// Only for sources built with CUDA (it includes the CUDA headers).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "core/error.h"

namespace tessera::cuda {

const char* cublas_status_name(cublasStatus_t s);
// True when TESSERA_SYNC_DEBUG=1: synchronise after every launch so a fault names its kernel.
bool sync_debug();
// cudaGetLastError (and, under TESSERA_SYNC_DEBUG, a stream synchronise); throws naming `kernel`.
void check_launch(const char* kernel, const char* file, int line);

}  // namespace tessera::cuda

#define TS_CUDA_CHECK(expr)                                                                  \
  do {                                                                                       \
    cudaError_t ts_err_ = (expr);                                                            \
    if (ts_err_ != cudaSuccess) [[unlikely]] {                                               \
      cudaGetLastError();                                                                    \
      TS_ERROR("CUDA error ", cudaGetErrorName(ts_err_), " (", cudaGetErrorString(ts_err_), \
               ") in ", #expr);                                                              \
    }                                                                                        \
  } while (0)

#define TS_CUBLAS_CHECK(expr)                                                                \
  do {                                                                                       \
    cublasStatus_t ts_st_ = (expr);                                                          \
    if (ts_st_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                        \
      TS_ERROR("cuBLAS error ", ::tessera::cuda::cublas_status_name(ts_st_), " in ", #expr); \
  } while (0)

#define TS_CUDNN_CHECK(expr)                                                                 \
  do {                                                                                       \
    cudnnStatus_t ts_st_ = (expr);                                                           \
    if (ts_st_ != CUDNN_STATUS_SUCCESS) [[unlikely]]                                         \
      TS_ERROR("cuDNN error ", cudnnGetErrorString(ts_st_), " in ", #expr);                  \
  } while (0)

#define TS_CUDA_CHECK_LAUNCH(kernel_name) ::tessera::cuda::check_launch(kernel_name, __FILE__, __LINE__)
