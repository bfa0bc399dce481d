// Padding: routing and CPU launches.
#include "core/dispatch.h"
#include "kernels/pad.h"

namespace tessera {

void pad_kernel_cpu(const Tensor& y, const Tensor& x, const PadGeometry& g, double value) { pad_impl(CpuLaunch{}, y, x, g, value); }
void pad_backward_kernel_cpu(const Tensor& gx, const Tensor& gy, const PadGeometry& g) { pad_backward_impl(CpuLaunch{}, gx, gy, g); }
void pad_kernel(const Tensor& y, const Tensor& x, const PadGeometry& g, double value) {
  if (y.numel() == 0) return;
  if (x.is_cuda()) TS_CUDA_CALL(pad_kernel_cuda(y, x, g, value));
  else pad_kernel_cpu(y, x, g, value);
}
void pad_backward_kernel(const Tensor& gx, const Tensor& gy, const PadGeometry& g) {
  if (gx.numel() == 0) return;
  if (gx.is_cuda()) TS_CUDA_CALL(pad_backward_kernel_cuda(gx, gy, g));
  else pad_backward_kernel_cpu(gx, gy, g);
}

}  // namespace tessera
