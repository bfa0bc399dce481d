// CUDA traversals for reductions over a contiguous [A, R, B] block. CUDA-only: the traversals (warp
// and block trees, split rows); the ops' step and combine are kernels/reduce.h's, and the tests
// emulate these groupings on the CPU (ReduceGpuOrder in tests/test_ops_reduce.cpp).
//   B == 1, short rows (R <= 256): one warp per row, shuffle tree.
//   B == 1, long rows: one 256-thread block per row (warp shuffles, then one warp over the
//           warp results); when there are too few rows to fill the device, each row is split
//           across several blocks that write partial accumulators, and a second pass combines them.
//   B > 1:  one thread per output column, walking R (coalesced across b); split over R the same
//           way when there are too few columns.
#include <cstring>

#include "core/cuda/launch.cuh"
#include "core/view.h"
#include "kernels/reduce.h"

namespace tessera {

namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

// Shuffles any trivially copyable value down the warp, 32 bits at a time.
template <class T>
__device__ T shfl_down(const T& v, int delta) {
  constexpr int kWords = (sizeof(T) + 3) / 4;
  uint32_t w[kWords] = {};
  memcpy(w, &v, sizeof(T));
  for (int k = 0; k < kWords; ++k) w[k] = __shfl_down_sync(0xffffffffu, w[k], delta);
  T out;
  memcpy(&out, w, sizeof(T));
  return out;
}

template <class Op>
__device__ typename Op::acc_t warp_reduce(const Op& op, typename Op::acc_t acc) {
  for (int delta = kWarp / 2; delta > 0; delta /= 2) acc = op.combine(acc, shfl_down(acc, delta));
  return acc;
}

// Block-wide combine; the result is valid in thread 0.
template <class Op>
__device__ typename Op::acc_t block_reduce(const Op& op, typename Op::acc_t acc) {
  using Acc = typename Op::acc_t;
  __shared__ Acc smem[kThreads / kWarp];  // accumulators are plain aggregates
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  acc = warp_reduce(op, acc);
  if (lane == 0) smem[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    acc = lane < kThreads / kWarp ? smem[lane] : op.identity();
    acc = warp_reduce(op, acc);
  }
  return acc;
}

// One warp per row, 8 rows per block.
template <class In, class Op>
__global__ void reduce_rows_warp_kernel(const In* x, int64_t A, int64_t R, Op op) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kThreads / kWarp) + threadIdx.x / kWarp;
  if (row >= A) return;
  const int lane = threadIdx.x % kWarp;
  auto acc = op.identity();
  for (int64_t r = lane; r < R; r += kWarp) acc = op.step(acc, x[row * R + r], r);
  acc = warp_reduce(op, acc);
  if (lane == 0) op.write(acc, row);
}

// Block (split, row): folds r in [split * chunk, (split + 1) * chunk). With one split it writes the
// result; otherwise it stores the partial accumulator in partial[row * splits + split].
template <class In, class Op>
__global__ void reduce_rows_block_kernel(const In* x, int64_t A, int64_t R, int64_t chunk, int splits, Op op,
                                         typename Op::acc_t* partial) {
  for (int64_t row = blockIdx.y; row < A; row += gridDim.y) {
    const int64_t r0 = static_cast<int64_t>(blockIdx.x) * chunk;
    const int64_t r1 = min(R, r0 + chunk);
    auto acc = op.identity();
    for (int64_t r = r0 + threadIdx.x; r < r1; r += kThreads) acc = op.step(acc, x[row * R + r], r);
    acc = block_reduce(op, acc);
    if (threadIdx.x == 0) {
      if (splits == 1) op.write(acc, row);
      else partial[row * splits + blockIdx.x] = acc;
    }
    __syncthreads();  // smem is reused by the next row
  }
}

// One thread per (split, column): folds r in its chunk of R for output column o = a * B + b.
template <class In, class Op>
__global__ void reduce_columns_kernel(const In* x, int64_t A, int64_t R, int64_t B, int64_t chunk, int splits, Op op,
                                      typename Op::acc_t* partial) {
  const int64_t outputs = A * B;
  const int64_t split = blockIdx.y;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < outputs;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t a = o / B, b = o % B;
    const int64_t r0 = split * chunk, r1 = min(R, r0 + chunk);
    auto acc = op.identity();
    for (int64_t r = r0; r < r1; ++r) acc = op.step(acc, x[(a * R + r) * B + b], r);
    if (splits == 1) op.write(acc, o);
    else partial[split * outputs + o] = acc;
  }
}

// Combines partial accumulators: for output o, partial[o * stride_o + k * stride_k], k < splits.
template <class Op>
__global__ void combine_partials_kernel(const typename Op::acc_t* partial, int64_t outputs, int splits,
                                        int64_t stride_o, int64_t stride_k, Op op) {
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < outputs;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    auto acc = op.identity();
    for (int k = 0; k < splits; ++k) acc = op.combine(acc, partial[o * stride_o + k * stride_k]);
    op.write(acc, o);
  }
}

int sm_count(int device) {
  int sms = 0;
  TS_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

template <class In, class Op>
void reduce_launch(const In* x, int64_t A, int64_t R, int64_t B, const Op& op, int device) {
  using Acc = typename Op::acc_t;
  cuda::DeviceGuard guard(device);
  cudaStream_t stream = cuda::stream(device);
  const int64_t target_blocks = static_cast<int64_t>(sm_count(device)) * 4;
  Tensor partial_buf;
  auto partial_ptr = [&](int64_t count) {
    partial_buf = raw::empty({count * static_cast<int64_t>(sizeof(Acc))}, DType::UInt8, Device(DeviceType::CUDA, device));
    return static_cast<Acc*>(partial_buf.data_ptr());
  };

  if (B == 1) {
    if (R <= 256) {
      const int64_t blocks = (A + kThreads / kWarp - 1) / (kThreads / kWarp);
      reduce_rows_warp_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, A, R, op);
      TS_CUDA_CHECK_LAUNCH("reduce_rows_warp_kernel");
      return;
    }
    // Split long rows when the rows alone do not give the device enough blocks.
    int splits = 1;
    if (A < target_blocks) {
      const int64_t want = (target_blocks + A - 1) / A;
      const int64_t max_useful = (R + 4 * kThreads - 1) / (4 * kThreads);  // >= 4 elements per thread
      splits = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({want, max_useful, 1024})));
    }
    const int64_t chunk = (R + splits - 1) / splits;
    Acc* partial = splits > 1 ? partial_ptr(A * splits) : nullptr;
    dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(std::min<int64_t>(A, 65535)));
    reduce_rows_block_kernel<<<grid, kThreads, 0, stream>>>(x, A, R, chunk, splits, op, partial);
    TS_CUDA_CHECK_LAUNCH("reduce_rows_block_kernel");
    if (splits > 1) {
      combine_partials_kernel<<<cuda::grid_size_for(A), kThreads, 0, stream>>>(partial, A, splits, splits, 1, op);
      TS_CUDA_CHECK_LAUNCH("combine_partials_kernel");
    }
    return;
  }
  const int64_t outputs = A * B;
  const int64_t column_blocks = (outputs + kThreads - 1) / kThreads;
  int splits = 1;
  if (column_blocks < target_blocks && R > 64)
    splits = static_cast<int>(std::min<int64_t>({(target_blocks + column_blocks - 1) / column_blocks, R / 32, 1024}));
  splits = std::max(splits, 1);
  const int64_t chunk = (R + splits - 1) / splits;
  Acc* partial = splits > 1 ? partial_ptr(outputs * splits) : nullptr;
  dim3 grid(static_cast<unsigned>(std::min<int64_t>(column_blocks, 65535)), static_cast<unsigned>(splits));
  reduce_columns_kernel<<<grid, kThreads, 0, stream>>>(x, A, R, B, chunk, splits, op, partial);
  TS_CUDA_CHECK_LAUNCH("reduce_columns_kernel");
  if (splits > 1) {
    combine_partials_kernel<<<cuda::grid_size_for(outputs), kThreads, 0, stream>>>(partial, outputs, splits, 1, outputs, op);
    TS_CUDA_CHECK_LAUNCH("combine_partials_kernel");
  }
}

}  // namespace

void reduce_kernel_cuda(ReduceOp op, const Tensor& x, int64_t A, int64_t R, int64_t B, const Tensor& values,
                        const Tensor& indices) {
  reduce_dispatch<true>(op, x, R, values, indices, [&]<class In>(const auto& reduce_op) {
    reduce_launch(x.data<In>(), A, R, B, reduce_op, x.device().index);
  });
}

}  // namespace tessera
