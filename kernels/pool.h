// max_pool2d: forward (values and flat per-plane argmax indices, as PyTorch) and backward written
// as a gather (each input pixel sums the gradients of the windows whose argmax it is), so both
// devices run one body, without atomics and deterministically.
#pragma once

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/math.h"

namespace tessera {

struct Pool2dGeometry {
  int64_t N, C, H, W, Ho, Wo;
  int64_t kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
};

// The window rule, once for every loop below: v replaces the best so far when larger or NaN, so
// ties keep the first maximum and a NaN wins (the last NaN), as PyTorch.
template <class T>
TS_HD void max_pool_take(T v, int64_t at, T& best, int64_t& best_index) {
  if (v > best || math::isnan(v)) {
    best = v;
    best_index = at;
  }
}

// One output element per call.
template <class T>
struct MaxPool2dKernel {
  const T* x;
  T* y;
  int64_t* indices;
  Pool2dGeometry g;
  TS_HD void operator()(int64_t i) const {
    const int64_t ow = i % g.Wo, oh = (i / g.Wo) % g.Ho, plane = i / (g.Wo * g.Ho);
    int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
    while (h0 < 0) h0 += g.dil_h;
    while (w0 < 0) w0 += g.dil_w;
    const int64_t h1 = oh * g.stride_h - g.pad_h + (g.kh - 1) * g.dil_h + 1;
    const int64_t w1 = ow * g.stride_w - g.pad_w + (g.kw - 1) * g.dil_w + 1;
    const T* xp = x + plane * g.H * g.W;
    T best = math::lowest<T>();
    int64_t best_index = h0 * g.W + w0;
    for (int64_t h = h0; h < h1 && h < g.H; h += g.dil_h)
      for (int64_t w = w0; w < w1 && w < g.W; w += g.dil_w) max_pool_take(xp[h * g.W + w], h * g.W + w, best, best_index);
    y[i] = best;
    if (indices) indices[i] = best_index;
  }
  void range(int64_t b, int64_t e) const {  // one output row at a time: no division per element
    for (int64_t i = b; i < e;) {
      const int64_t ow0 = i % g.Wo, oh = (i / g.Wo) % g.Ho, plane = i / (g.Wo * g.Ho);
      const int64_t n = g.Wo - ow0 < e - i ? g.Wo - ow0 : e - i;
      int64_t h0 = oh * g.stride_h - g.pad_h;
      while (h0 < 0) h0 += g.dil_h;
      int64_t h1 = oh * g.stride_h - g.pad_h + (g.kh - 1) * g.dil_h + 1;
      h1 = h1 < g.H ? h1 : g.H;
      const T* xp = x + plane * g.H * g.W;
      int64_t j = 0;
      if (g.kh == 2 && g.kw == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 && g.pad_w == 0 && g.dil_h == 1 &&
          g.dil_w == 1 && 2 * oh + 1 < g.H) {
        // U-Net's 2x2 pool: the four taps of each full window, in the general loop's order (same
        // ties and NaN rule), without its per-window bounds; partial (ceil-mode) windows fall through.
        const int64_t full = (g.W / 2 - ow0) < n ? (g.W / 2 - ow0) : n;
        const T* r0 = xp + 2 * oh * g.W;
        const T* r1 = r0 + g.W;
        for (; j < full; ++j) {
          const int64_t w = 2 * (ow0 + j);
          T best = math::lowest<T>();
          int64_t at = 2 * oh * g.W + w;
          const int64_t first = at;
          max_pool_take(r0[w], first, best, at);
          max_pool_take(r0[w + 1], first + 1, best, at);
          max_pool_take(r1[w], first + g.W, best, at);
          max_pool_take(r1[w + 1], first + g.W + 1, best, at);
          y[i + j] = best;
          if (indices) indices[i + j] = at;
        }
      }
      for (; j < n; ++j) {
        const int64_t ow = ow0 + j;
        int64_t w0 = ow * g.stride_w - g.pad_w;
        while (w0 < 0) w0 += g.dil_w;
        int64_t w1 = ow * g.stride_w - g.pad_w + (g.kw - 1) * g.dil_w + 1;
        w1 = w1 < g.W ? w1 : g.W;
        T best = math::lowest<T>();
        int64_t best_index = h0 * g.W + w0;
        for (int64_t h = h0; h < h1; h += g.dil_h)
          for (int64_t w = w0; w < w1; w += g.dil_w) {
            max_pool_take(xp[h * g.W + w], h * g.W + w, best, best_index);
          }
        y[i + j] = best;
        if (indices) indices[i + j] = best_index;
      }
      i += n;
    }
  }
};

// One input element per call: the sum of grad_out over the windows whose argmax is this pixel.
template <class T>
struct MaxPool2dBackwardKernel {
  const T* grad_out;
  const int64_t* indices;
  T* grad_in;
  Pool2dGeometry g;
  TS_HD void operator()(int64_t i) const {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, plane = i / (g.W * g.H);
    // Windows that can contain (h, w): oh * s - p <= h <= oh * s - p + (k - 1) * d.
    const int64_t oh_lo = math::ceil_div_nonneg(h + g.pad_h - (g.kh - 1) * g.dil_h, g.stride_h);
    const int64_t oh_hi = (h + g.pad_h) / g.stride_h;
    const int64_t ow_lo = math::ceil_div_nonneg(w + g.pad_w - (g.kw - 1) * g.dil_w, g.stride_w);
    const int64_t ow_hi = (w + g.pad_w) / g.stride_w;
    const int64_t target = h * g.W + w;
    const int64_t base = plane * g.Ho * g.Wo;
    T acc = 0;
    for (int64_t oh = oh_lo; oh <= oh_hi && oh < g.Ho; ++oh)
      for (int64_t ow = ow_lo; ow <= ow_hi && ow < g.Wo; ++ow)
        if (indices[base + oh * g.Wo + ow] == target) acc += grad_out[base + oh * g.Wo + ow];
    grad_in[i] = acc;
  }
};

void max_pool2d_kernel(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dGeometry& g);
void max_pool2d_backward_kernel(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dGeometry& g);
void max_pool2d_kernel_cpu(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dGeometry& g);
void max_pool2d_backward_kernel_cpu(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dGeometry& g);
void max_pool2d_kernel_cuda(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dGeometry& g);
void max_pool2d_backward_kernel_cuda(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dGeometry& g);

template <class Launch>
void max_pool2d_impl(const Launch& L, const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dGeometry& g) {
  dispatch_floating(x.dtype(), "max_pool2d", [&]<class T>() {
    L(y.numel(), MaxPool2dKernel<T>{x.data<T>(), y.data<T>(), indices.defined() ? indices.data<int64_t>() : nullptr, g},
      "max_pool2d_kernel");
  });
}

template <class Launch>
void max_pool2d_backward_impl(const Launch& L, const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices,
                              const Pool2dGeometry& g) {
  dispatch_floating(grad_out.dtype(), "max_pool2d_backward", [&]<class T>() {
    L(grad_in.numel(), MaxPool2dBackwardKernel<T>{grad_out.data<T>(), indices.data<int64_t>(), grad_in.data<T>(), g},
      "max_pool2d_backward_kernel");
  });
}

}  // namespace tessera
