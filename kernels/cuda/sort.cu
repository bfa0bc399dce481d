// CUDA sort: CUB radix sort of (key, index) pairs, stable, so equal keys keep their order; the keys
// are sort_key's encoding (kernels/sort.h: NaN last, -0 == +0, as the CPU), and the values are
// gathered by the sorted indices afterwards. One row: DeviceRadixSort; several rows:
// DeviceSegmentedRadixSort with offsets row * D. CUDA-only here: the radix sort; the key encoding
// and the gather are shared functors that the CPU runs too (sort_by_keys_cpu).
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include "core/cuda/launch.cuh"
#include "core/view.h"
#include "kernels/sort.h"

namespace tessera {

namespace {

struct IotaModKernel {
  int64_t* out;
  int64_t D;
  TS_HD void operator()(int64_t i) const { out[i] = i % D; }
};

struct RowOffsetsKernel {
  int64_t* out;
  int64_t D;
  TS_HD void operator()(int64_t i) const { out[i] = i * D; }
};

}  // namespace

void sort_kernel_cuda(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending) {
  const Device dev = x.device();
  TS_CHECK(rows * D < (int64_t{1} << 31), "sort: CUDA sort supports fewer than 2^31 elements, got ", rows * D);
  TS_CHECK(rows < (int64_t{1} << 31), "sort: too many rows");
  const int n = static_cast<int>(rows * D);
  CudaLaunch launch{dev.index};
  Tensor iota = raw::empty({rows * D}, DType::Int64, dev);
  launch(rows * D, IotaModKernel{iota.data<int64_t>(), D}, "iota_mod_kernel");
  Tensor offsets;
  if (rows > 1) {
    offsets = raw::empty({rows + 1}, DType::Int64, dev);
    launch(rows + 1, RowOffsetsKernel{offsets.data<int64_t>(), D}, "row_offsets_kernel");
  }
  cuda::DeviceGuard guard(dev.index);
  cudaStream_t stream = cuda::stream(dev.index);
  dispatch_numeric(x.dtype(), "sort", [&]<class T>() {
    using U = SortKeyT<T>;
    Tensor keys = raw::empty({2 * rows * D * static_cast<int64_t>(sizeof(U))}, DType::UInt8, dev);
    U* keys_in = static_cast<U*>(keys.data_ptr());
    U* keys_out = keys_in + rows * D;
    launch(rows * D, SortKeyKernel<T>{x.data<T>(), keys_in}, "sort_key_kernel");
    const int64_t* vals_in = iota.data<int64_t>();
    int64_t* vals_out = indices.data<int64_t>();
    auto run = [&](void* temp, size_t& bytes) {
      if (rows == 1) {
        if (descending)
          return cub::DeviceRadixSort::SortPairsDescending(temp, bytes, keys_in, keys_out, vals_in, vals_out, n, 0,
                                                            sizeof(U) * 8, stream);
        return cub::DeviceRadixSort::SortPairs(temp, bytes, keys_in, keys_out, vals_in, vals_out, n, 0, sizeof(U) * 8,
                                               stream);
      }
      const int64_t* off = offsets.data<int64_t>();
      const int segments = static_cast<int>(rows);
      if (descending)
        return cub::DeviceSegmentedRadixSort::SortPairsDescending(temp, bytes, keys_in, keys_out, vals_in, vals_out, n,
                                                                   segments, off, off + 1, 0, sizeof(U) * 8, stream);
      return cub::DeviceSegmentedRadixSort::SortPairs(temp, bytes, keys_in, keys_out, vals_in, vals_out, n, segments,
                                                      off, off + 1, 0, sizeof(U) * 8, stream);
    };
    size_t temp_bytes = 0;
    TS_CUDA_CHECK(run(nullptr, temp_bytes));
    Tensor temp = raw::empty({static_cast<int64_t>(temp_bytes) + 1}, DType::UInt8, dev);
    TS_CUDA_CHECK(run(temp.data_ptr(), temp_bytes));
    launch(rows * D, SortGatherKernel<T>{x.data<T>(), vals_out, values.data<T>(), D}, "sort_gather_kernel");
  });
}

}  // namespace tessera
