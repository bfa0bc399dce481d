// CUDA launches of the indexing kernels; nonzero via a CUB prefix sum over the nonzero flags.
#include <cub/device/device_scan.cuh>

#include "core/cuda/launch.cuh"
#include "core/view.h"
#include "kernels/index.h"

namespace tessera {

void index_select_kernel_cuda(const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer, int64_t D, int64_t inner) {
  index_select_impl(CudaLaunch{out.device().index}, out, x, index, outer, D, inner);
}
void index_add_kernel_cuda(const Tensor& out, const Tensor& src, const Tensor& index, int64_t outer, int64_t D, int64_t inner) {
  index_add_impl(CudaLaunch{out.device().index}, out, src, index, outer, D, inner);
}
void gather_kernel_cuda(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  gather_impl(CudaLaunch{out.device().index}, out, x, dim, index);
}
void scatter_add_kernel_cuda(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  scatter_add_impl(CudaLaunch{out.device().index}, out, dim, index, src);
}
void cumsum_kernel_cuda(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner) {
  cumsum_impl<true>(CudaLaunch{y.device().index}, y, x, outer, D, inner);
}

namespace {

template <class T>
struct NonzeroFlagKernel {
  const T* x;
  int64_t* flags;
  TS_HD void operator()(int64_t i) const { flags[i] = x[i] != T(0) ? 1 : 0; }
};

// positions: inclusive prefix count of nonzeros; element i (if nonzero) goes to row positions[i] - 1.
template <class T>
struct NonzeroWriteKernel {
  const T* x;
  const int64_t* positions;
  int64_t* out;
  int64_t nd;
  int64_t shape[kMaxDims];
  TS_HD void operator()(int64_t i) const {
    if (!(x[i] != T(0))) return;
    const int64_t row = positions[i] - 1;
    int64_t rem = i;
    for (int64_t d = nd - 1; d >= 0; --d) {
      out[row * nd + d] = rem % shape[d];
      rem /= shape[d];
    }
  }
};

}  // namespace

Tensor nonzero_kernel_cuda(const Tensor& x_in) {
  Tensor x = raw::contiguous(x_in);
  const Device dev = x.device();
  const int64_t n = x.numel(), nd = x.dim();
  TS_CHECK(nd <= kMaxDims, "nonzero: at most ", kMaxDims, " dimensions on CUDA");
  if (n == 0) return raw::empty({0, nd}, DType::Int64, dev);
  CudaLaunch launch{dev.index};
  Tensor positions = raw::empty({n}, DType::Int64, dev);
  Tensor out;
  dispatch_all(x.dtype(), "nonzero", [&]<class T>() {
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
