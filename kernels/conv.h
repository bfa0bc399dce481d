// 2-D convolution (cross-correlation, as PyTorch): forward, backward-input and backward-weight.
// CPU: im2col + OpenBLAS GEMM over bands of output rows (the column buffer stays bounded), with
// col2im written as a gather (each input pixel sums what its windows received: no atomics, same
// result at any thread count). CUDA: cuDNN (kernels/cuda/conv.cpp). conv_transpose2d is the
// backward-input of conv2d with the roles of input and output exchanged (autograd/ops_conv.cpp).
#pragma once

#include <cstdint>

#include "core/parallel.h"
#include "core/tensor.h"

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

// cols[(c * kh + i) * kw + j][r * Wo + ow] = x[c][(r0 + r) * s - p + i * d][ow * s - p + j * d] or 0,
// for the Cg channels of one (image, group) and output rows [r0, r0 + rows).
template <class T>
struct Im2colKernel {
  const T* x;  // the group's first channel plane
  T* cols;
  Conv2dGeometry g;
  int64_t r0, rows;
  TS_HD void operator()(int64_t idx) const {
    const int64_t band = rows * g.Wo;
    const int64_t k = idx / band, pos = idx % band;
    const int64_t j = k % g.kw, i = (k / g.kw) % g.kh, c = k / (g.kw * g.kh);
    const int64_t oh = r0 + pos / g.Wo, ow = pos % g.Wo;
    const int64_t h = oh * g.stride_h - g.pad_h + i * g.dil_h, w = ow * g.stride_w - g.pad_w + j * g.dil_w;
    cols[idx] = (h >= 0 && h < g.H && w >= 0 && w < g.W) ? x[(c * g.H + h) * g.W + w] : T(0);
  }
};

// The adjoint of Im2colKernel for one band: gx[c][h][w] += sum of the column entries that read it.
// One call per input pixel of the band's rows [h0, h0 + hn).
template <class T>
struct Col2imKernel {
  const T* cols;
  T* gx;  // the group's first channel plane
  Conv2dGeometry g;
  int64_t r0, rows, h0, hn;
  TS_HD void operator()(int64_t idx) const {
    const int64_t w = idx % g.W, h = h0 + (idx / g.W) % hn, c = idx / (g.W * hn);
    T acc = 0;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t th = h + g.pad_h - i * g.dil_h;
      if (th < 0 || th % g.stride_h != 0) continue;
      const int64_t oh = th / g.stride_h;
      if (oh < r0 || oh >= r0 + rows) continue;
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t tw = w + g.pad_w - j * g.dil_w;
        if (tw < 0 || tw % g.stride_w != 0) continue;
        const int64_t ow = tw / g.stride_w;
        if (ow >= g.Wo) continue;
        acc += cols[((c * g.kh + i) * g.kw + j) * (rows * g.Wo) + (oh - r0) * g.Wo + ow];
      }
    }
    gx[(c * g.H + h) * g.W + w] += acc;
  }
};

// x [N, C, H, W], w [O, C/groups, kh, kw], out/grad_out [N, O, Ho, Wo]: all contiguous, one dtype.
void conv2d_forward_kernel(const Tensor& out, const Tensor& x, const Tensor& w, const Conv2dGeometry& g);
// grad_x must be zero-filled by the caller: contributions are added.
void conv2d_backward_input_kernel(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g);
// grad_w is overwritten.
void conv2d_backward_weight_kernel(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g);

void conv2d_forward_kernel_cpu(const Tensor& out, const Tensor& x, const Tensor& w, const Conv2dGeometry& g);
void conv2d_backward_input_kernel_cpu(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g);
void conv2d_backward_weight_kernel_cpu(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g);
void conv2d_forward_kernel_cuda(const Tensor& out, const Tensor& x, const Tensor& w, const Conv2dGeometry& g);
void conv2d_backward_input_kernel_cuda(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g);
void conv2d_backward_weight_kernel_cuda(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g);

}  // namespace tessera
