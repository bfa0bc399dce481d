// Convolution routing.
#include "kernels/conv.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "core/dispatch.h"
#include "core/view.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/elementwise.h"

namespace tessera {

namespace {
std::atomic<bool> cudnn_benchmark_flag{false};
// A switch's value at start: the environment variable `name` ("0" or "1") if set, else `fallback`.
bool switch_from_env(const char* name, bool fallback) {
  const char* env = std::getenv(name);
  if (env == nullptr) return fallback;
  const std::string v = env;
  TS_CHECK(v == "0" || v == "1", name, " must be 0 or 1, got '", v, "'");
  return v == "1";
}
// TESSERA_CPU_WINOGRAD=0 starts with Winograd off (to compare whole models both ways).
std::atomic<bool>& cpu_winograd_flag() {
  static std::atomic<bool> flag{switch_from_env("TESSERA_CPU_WINOGRAD", true)};
  return flag;
}
// TESSERA_CPU_BF16=0 starts with tessera's bfloat16 kernels off, 1 on even without AVX512-BF16.
std::atomic<bool>& cpu_bf16_flag() {
  static std::atomic<bool> flag{switch_from_env("TESSERA_CPU_BF16", cpu::has_avx512_bf16())};
  return flag;
}
// TESSERA_CPU_WINOGRAD_BF16=0 starts with bfloat16 Winograd off (direct bfloat16 convolutions).
std::atomic<bool>& cpu_winograd_bf16_flag() {
  static std::atomic<bool> flag{switch_from_env("TESSERA_CPU_WINOGRAD_BF16", true)};
  return flag;
}
}  // namespace
void set_cpu_winograd_bf16(bool on) { cpu_winograd_bf16_flag().store(on); }
bool cpu_winograd_bf16() { return cpu_winograd_bf16_flag().load(); }
void set_cpu_bf16_kernels(bool on) { cpu_bf16_flag().store(on); }
bool cpu_bf16_kernels() { return cpu_bf16_flag().load(); }
void set_cudnn_benchmark(bool on) { cudnn_benchmark_flag.store(on); }
bool cudnn_benchmark() { return cudnn_benchmark_flag.load(); }
void set_cpu_winograd(bool on) { cpu_winograd_flag().store(on); }
bool cpu_winograd() { return cpu_winograd_flag().load(); }

static std::atomic<bool>& tf32_flag() {
  static std::atomic<bool> f{false};
  return f;
}
void set_cuda_allow_tf32(bool on) { tf32_flag().store(on); }
bool cuda_allow_tf32() { return tf32_flag().load(); }

void conv2d_forward_kernel(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g,
                           bool relu, const Tensor& scale) {
  if (out.numel() == 0) return;
  const Tensor b = bias.defined() ? raw::contiguous(bias) : Tensor();
  const Tensor s = scale.defined() ? raw::contiguous(scale) : Tensor();
  if (x.is_cpu()) {
    conv2d_forward_kernel_cpu(out, x, w, b, g, relu, s);
    return;
  }
  TS_CUDA_CALL(conv2d_forward_kernel_cuda(out, x, w, g));
  if (s.defined()) elementwise_binary(BinaryOp::Mul, out, out, raw::reshape(s, {1, g.O, 1, 1}));
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
