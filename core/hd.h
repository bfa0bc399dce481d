// TS_HD: marks a function that runs both on the host and, under nvcc, in CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define TS_HD __host__ __device__ inline
#else
#define TS_HD inline
#endif
