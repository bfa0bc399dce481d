// Convolution routing.
#include "kernels/conv.h"

#include <atomic>

#include "core/dispatch.h"
#include "core/view.h"
#include "kernels/elementwise.h"

namespace tessera {

namespace {
std::atomic<bool> cudnn_benchmark_flag{false};
}
void set_cudnn_benchmark(bool on) { cudnn_benchmark_flag.store(on); }
bool cudnn_benchmark() { return cudnn_benchmark_flag.load(); }

void conv2d_forward_kernel(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g,
                           bool relu) {
  if (out.numel() == 0) return;
  const Tensor b = bias.defined() ? raw::contiguous(bias) : Tensor();
  if (x.is_cpu()) {
    conv2d_forward_kernel_cpu(out, x, w, b, g, relu);
    return;
  }
  TS_CUDA_CALL(conv2d_forward_kernel_cuda(out, x, w, g));
  if (b.defined()) elementwise_binary(BinaryOp::Add, out, out, raw::reshape(b, {1, g.O, 1, 1}));
  if (relu) elementwise_unary(UnaryOp::Relu, out, out);
}
void conv2d_backward_input_kernel(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g) {
  if (grad_x.numel() == 0 || grad_out.numel() == 0) return;
  if (w.is_cuda()) TS_CUDA_CALL(conv2d_backward_input_kernel_cuda(grad_x, grad_out, w, g));
  else conv2d_backward_input_kernel_cpu(grad_x, grad_out, w, g);
}
void conv2d_backward_weight_kernel(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g) {
  if (grad_w.numel() == 0) return;
  if (grad_out.numel() == 0 || x.numel() == 0) {  // an empty batch: nothing contributes
    raw::fill_(grad_w, 0.0);
    return;
  }
  if (x.is_cuda()) TS_CUDA_CALL(conv2d_backward_weight_kernel_cuda(grad_w, grad_out, x, g));
  else conv2d_backward_weight_kernel_cpu(grad_w, grad_out, x, g);
}

}  // namespace tessera
