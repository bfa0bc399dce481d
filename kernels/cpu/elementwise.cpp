// CPU launches of the elementwise kernels (kernels/elementwise.h).
#include "kernels/elementwise.h"

namespace tessera {

void unary_kernel_cpu(UnaryOp op, const Tensor& out, const Tensor& in, double p0, double p1) {
  unary_kernel(CpuLaunch{}, op, out, in, p0, p1);
}
void binary_kernel_cpu(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  binary_kernel(CpuLaunch{}, op, out, a, b);
}
void binary_scalar_kernel_cpu(BinaryOp op, const Tensor& out, const Tensor& a, double s, bool scalar_first) {
  binary_scalar_kernel(CpuLaunch{}, op, out, a, s, scalar_first);
}
void where_kernel_cpu(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b, double scalar) {
  where_kernel(CpuLaunch{}, out, cond, a, b, scalar);
}

}  // namespace tessera
