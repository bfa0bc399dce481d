// 2-D convolution (cross-correlation, as PyTorch): forward, backward-input and backward-weight.
// CPU: im2col + OpenBLAS GEMM over bands of output rows (the column buffer stays bounded), with
// col2im written as a gather over input rows (no atomics, same result at any thread count)
// (kernels/cpu/conv.cpp). CUDA: cuDNN (kernels/cuda/conv.cpp). No per-element body is shared:
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
// bias [O] or undefined; relu: max(0, .) after the bias (conv2d_relu). The CPU applies both to each
// band of output rows right after its GEMM, while the band is still in cache (a separate pass would
// read and write the whole output once more for each); CUDA runs them as elementwise kernels.
void conv2d_forward_kernel(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g,
                           bool relu = false);
// grad_x must be zero-filled by the caller: contributions are added.
void conv2d_backward_input_kernel(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g);
// grad_w is overwritten.
void conv2d_backward_weight_kernel(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g);

void conv2d_forward_kernel_cpu(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g,
                               bool relu);
void conv2d_backward_input_kernel_cpu(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g);
void conv2d_backward_weight_kernel_cpu(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g);
void conv2d_forward_kernel_cuda(const Tensor& out, const Tensor& x, const Tensor& w, const Conv2dGeometry& g);
void conv2d_backward_input_kernel_cuda(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g);
void conv2d_backward_weight_kernel_cuda(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g);

}  // namespace tessera
