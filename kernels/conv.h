// 2-D convolution (cross-correlation, as PyTorch): forward, backward-input and backward-weight.
// CPU: im2col + OpenBLAS GEMM over bands of output rows (the column buffer stays bounded), with
// col2im written as a gather over input rows (no atomics, same result at any thread count)
// (kernels/cpu/conv.cpp); 3x3 stride-1 convolutions with enough channels use Winograd F(2x2, 3x3)
// for the forward and both gradients (kernels/cpu/winograd.cpp), unless set_cpu_winograd(false).
// CUDA: cuDNN (kernels/cuda/conv.cpp). No per-element body is shared:
// the two devices use different algorithms. conv_transpose2d is the backward-input of conv2d with
// the roles of input and output exchanged (autograd/ops_conv.cpp).
#pragma once

#include <cstdint>

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/conv_settings.h"

namespace tessera {

struct Conv2dGeometry {
  int64_t N, C, H, W;      // input
  int64_t O, kh, kw;       // weight [O, C / groups, kh, kw]
  int64_t Ho, Wo;          // output
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  int64_t Cg() const { return C / groups; }
  int64_t Og() const { return O / groups; }
  int64_t K() const { return Cg() * kh * kw; }  // rows of a column buffer
};

// x [N, C, H, W], w [O, C/groups, kh, kw], out/grad_out [N, O, Ho, Wo]: all contiguous, one dtype.
// out = act(conv * scale[o] + bias[o]): bias [O] or undefined (0); scale [O] or undefined (1: no
// multiplication); act = max(0, .) if relu (conv2d_relu), else identity. The CPU applies them to
// each band of output rows right after its GEMM, while the band is still in cache (a separate pass
// would read and write the whole output once more for each); CUDA runs them as elementwise kernels.
void conv2d_forward_kernel(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g,
                           bool relu = false, const Tensor& scale = Tensor());
// grad_x must be zero-filled by the caller: contributions are added.
void conv2d_backward_input_kernel(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g);
// grad_w is overwritten.
void conv2d_backward_weight_kernel(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g);

// Winograd F(2x2, 3x3) on the CPU: 3x3 kernel, stride 1, no dilation, one group, padding <= 2, at
// least kWinogradMinChannels input and output channels, and at least 64 tiles of 2x2 outputs.
inline constexpr int64_t kWinogradMinChannels = 16;
bool conv2d_winograd_applies(const Conv2dGeometry& g);
// out = act(conv(x, w) * scale + bias) as conv2d_forward_kernel; added to out instead of stored if
// accumulate.
void conv2d_winograd_forward_cpu(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g,
                                 bool relu, const Tensor& scale, bool accumulate);
// grad_w (overwritten) of a convolution for which conv2d_winograd_applies(g).
void conv2d_winograd_backward_weight_cpu(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g);

void conv2d_forward_kernel_cpu(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g,
                               bool relu, const Tensor& scale);
void conv2d_backward_input_kernel_cpu(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g);
void conv2d_backward_weight_kernel_cpu(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g);
void conv2d_forward_kernel_cuda(const Tensor& out, const Tensor& x, const Tensor& w, const Conv2dGeometry& g);
void conv2d_backward_input_kernel_cuda(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g);
void conv2d_backward_weight_kernel_cuda(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g);

}  // namespace tessera
