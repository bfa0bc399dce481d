// CUDA NMS: (1) each 64x64 tile of the upper triangle writes, for each of its 64 rows, a 64-bit
// mask of the columns that row suppresses; (2) one block sweeps the sorted boxes in order, keeping
// a box unless an earlier kept box's mask removed it, OR-ing its mask row into the removed set in
// shared memory. Nothing is copied to the host but the number of kept boxes.
// The arithmetic of each thread (the row's suppression bits, the removed test, the fold) is in
// kernels/nms.h and runs on the CPU too (nms_sorted_bitmask_cpu, under cpu_per_element()).
// CUDA-only here: the tile loads into shared memory, the grid over the upper triangle, and the
// block-wide sweep with its barriers.
#include "core/cuda/launch.cuh"
#include "core/view.h"
#include "kernels/nms.h"

namespace tessera {

namespace {

constexpr int kTile = kNmsTile;

template <class T>
__global__ void nms_mask_kernel(const T* boxes, int64_t n, T threshold, int64_t col_blocks, unsigned long long* mask) {
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (row_block > col_block) return;  // the lower triangle is never read
  const int64_t row_left = n - row_block * kTile, col_left = n - col_block * kTile;
  const int64_t rows = row_left < kTile ? row_left : kTile, cols = col_left < kTile ? col_left : kTile;
  __shared__ T tile[kTile * 4];
  if (threadIdx.x < cols)
    for (int k = 0; k < 4; ++k) tile[threadIdx.x * 4 + k] = boxes[(col_block * kTile + threadIdx.x) * 4 + k];
  __syncthreads();
  if (threadIdx.x >= rows) return;
  const int64_t i = row_block * kTile + threadIdx.x;
  const int64_t start = row_block == col_block ? threadIdx.x + 1 : 0;
  mask[i * col_blocks + col_block] = nms_suppression_bits(boxes + i * 4, tile, start, cols, threshold);
}

// One block: the greedy sweep. removed[] lives in shared memory (col_blocks words).
__global__ void nms_sweep_kernel(const unsigned long long* mask, int64_t n, int64_t col_blocks, const int64_t* order,
                                 int64_t* keep, int64_t* keep_count) {
  extern __shared__ unsigned long long removed[];
  for (int64_t b = threadIdx.x; b < col_blocks; b += blockDim.x) removed[b] = 0;
  __syncthreads();
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t block = i / kTile;
    const bool is_removed = nms_is_removed(removed, i);  // uniform across the block
    // Every thread has read removed[block] before any thread updates it (thread 0 writes that word
    // below): without this barrier the read and the write race.
    __syncthreads();
    if (is_removed) continue;
    if (threadIdx.x == 0) keep[count] = order[i];
    ++count;
    const unsigned long long* row = mask + i * col_blocks;
    for (int64_t b = block + threadIdx.x; b < col_blocks; b += blockDim.x) nms_fold_row(removed, row, b);
    __syncthreads();
  }
  if (threadIdx.x == 0) *keep_count = count;
}

}  // namespace

Tensor nms_sorted_kernel_cuda(const Tensor& sorted_boxes, const Tensor& order, double iou_threshold) {
  const Device dev = sorted_boxes.device();
  const int64_t n = sorted_boxes.size(0);
  const int64_t col_blocks = (n + kTile - 1) / kTile;
  const size_t smem = static_cast<size_t>(col_blocks) * sizeof(unsigned long long);
  TS_CHECK(smem <= 48 * 1024, "nms: ", n, " boxes exceed what the CUDA sweep holds in shared memory (",
           48 * 1024 / 8 * kTile, " boxes)");
  TS_CHECK(col_blocks <= 65535, "nms: too many boxes for the CUDA mask grid: ", n);
  cuda::DeviceGuard guard(dev.index);
  cudaStream_t stream = cuda::stream(dev.index);
  Tensor mask = raw::empty({n * col_blocks}, DType::Int64, dev);
  auto* mask_ptr = reinterpret_cast<unsigned long long*>(mask.data_ptr());
  dispatch_floating(sorted_boxes.dtype(), "nms", [&]<class T>() {
    dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(col_blocks));
    nms_mask_kernel<<<grid, kTile, 0, stream>>>(sorted_boxes.data<T>(), n, static_cast<T>(iou_threshold), col_blocks, mask_ptr);
    TS_CUDA_CHECK_LAUNCH("nms_mask_kernel");
  });
  Tensor keep = raw::empty({n}, DType::Int64, dev);
  Tensor count = raw::empty({1}, DType::Int64, dev);
  nms_sweep_kernel<<<1, 256, smem, stream>>>(mask_ptr, n, col_blocks, order.data<int64_t>(), keep.data<int64_t>(),
                                             count.data<int64_t>());
  TS_CUDA_CHECK_LAUNCH("nms_sweep_kernel");
  const int64_t kept = count.item<int64_t>();  // the one transfer: the result's length
  return raw::narrow(keep, 0, 0, kept);
}

}  // namespace tessera
