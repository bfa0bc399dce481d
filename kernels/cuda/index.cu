// CUDA launches of the indexing kernels; nonzero via a CUB prefix sum over the nonzero flags (the
// flag and write functors are in kernels/index.h; CUDA-only here: the CUB scan).
#include <cub/device/device_scan.cuh>

#include "core/cuda/launch.cuh"
#include "core/view.h"
#include "kernels/index.h"

namespace tessera {

// Index launches: the kernels check their indices and flag a bad one in the device's error word
// (kernels/index.h), raised at the next synchronisation; under TESSERA_SYNC_DEBUG the launch check
// has synchronised already, so it is raised here, at the op.
namespace {
void raise_now_under_sync_debug(const Tensor& t) {
  if (cuda::sync_debug()) cuda::check_device_errors(t.device().index);
}
}  // namespace

void index_select_kernel_cuda(const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer, int64_t D, int64_t inner,
                              int* error) {
  index_select_impl(CudaLaunch{out.device().index}, out, x, index, outer, D, inner, error);
  raise_now_under_sync_debug(out);
}
void index_add_kernel_cuda(const Tensor& out, const Tensor& src, const Tensor& index, int64_t outer, int64_t D, int64_t inner,
                           int* error) {
  index_add_impl(CudaLaunch{out.device().index}, out, src, index, outer, D, inner, error);
  raise_now_under_sync_debug(out);
}
void gather_kernel_cuda(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index, int* error) {
  gather_impl(CudaLaunch{out.device().index}, out, x, dim, index, error);
  raise_now_under_sync_debug(out);
}
void scatter_add_kernel_cuda(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, int* error) {
  scatter_add_impl(CudaLaunch{out.device().index}, out, dim, index, src, error);
  raise_now_under_sync_debug(out);
}
void cumsum_kernel_cuda(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner) {
  cumsum_impl<true>(CudaLaunch{y.device().index}, y, x, outer, D, inner);
}

Tensor nonzero_kernel_cuda(const Tensor& x_in) {
  Tensor x = raw::contiguous(x_in);
  const Device dev = x.device();
  const int64_t n = x.numel(), nd = x.dim();
  TS_CHECK(nd <= kMaxDims, "nonzero: at most ", kMaxDims, " dimensions on CUDA");
  if (n == 0) return raw::empty({0, nd}, DType::Int64, dev);
  CudaLaunch launch{dev.index};
  Tensor positions = raw::empty({n}, DType::Int64, dev);
  Tensor out;
  dispatch_all_with_half(x.dtype(), "nonzero", [&]<class T>() {
    launch(n, NonzeroFlagKernel<T>{x.data<T>(), positions.data<int64_t>()}, "nonzero_flag_kernel");
    cuda::DeviceGuard guard(dev.index);
    cudaStream_t stream = cuda::stream(dev.index);
    int64_t* pos = positions.data<int64_t>();
    size_t temp_bytes = 0;
    TS_CUDA_CHECK(cub::DeviceScan::InclusiveSum(nullptr, temp_bytes, pos, pos, n, stream));
    Tensor temp = raw::empty({static_cast<int64_t>(temp_bytes) + 1}, DType::UInt8, dev);
    TS_CUDA_CHECK(cub::DeviceScan::InclusiveSum(temp.data_ptr(), temp_bytes, pos, pos, n, stream));
    const int64_t count = raw::narrow(positions, 0, n - 1, 1).item<int64_t>();  // synchronises
    out = raw::empty({count, nd}, DType::Int64, dev);
    NonzeroWriteKernel<T> k{x.data<T>(), pos, out.data<int64_t>(), nd, {}};
    for (int64_t d = 0; d < nd; ++d) k.shape[d] = x.size(d);
    if (count > 0) launch(n, k, "nonzero_write_kernel");
  });
  return out;
}

}  // namespace tessera
