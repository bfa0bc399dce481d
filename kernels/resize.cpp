// Resampling: routing and CPU launches.
#include "core/dispatch.h"
#include "kernels/resize.h"

namespace tessera {

void resize_kernel_cpu(const Tensor& y, const Tensor& x, const ResizeParams& p) { resize_impl(CpuLaunch{}, y, x, p); }
void resize_backward_kernel_cpu(const Tensor& gx, const Tensor& gy, const ResizeParams& p) {
  resize_backward_impl(CpuLaunch{}, gx, gy, p);
}
void resize_kernel(const Tensor& y, const Tensor& x, const ResizeParams& p) {
  if (y.numel() == 0) return;
  if (x.is_cuda()) TS_CUDA_CALL(resize_kernel_cuda(y, x, p));
  else resize_kernel_cpu(y, x, p);
}
void resize_backward_kernel(const Tensor& gx, const Tensor& gy, const ResizeParams& p) {
  if (gx.numel() == 0) return;
  if (gx.is_cuda()) TS_CUDA_CALL(resize_backward_kernel_cuda(gx, gy, p));
  else resize_backward_kernel_cpu(gx, gy, p);
}

}  // namespace tessera
