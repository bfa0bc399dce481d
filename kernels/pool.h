// max_pool2d: forward (values and flat per-plane argmax indices, as PyTorch) and backward written
// as a gather (each input pixel sums the gradients of the windows whose argmax it is), so both
// devices run one body, without atomics and deterministically. bfloat16 and float16 run natively:
// values are compared in float32 and stored back unchanged (a maximum of halves is a half), and a
// pixel's gradient sum is taken in float32 and rounded once.
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
  using F = opmath_t<T>;
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
    F best = math::lowest<F>();
    int64_t best_index = h0 * g.W + w0;
    for (int64_t h = h0; h < h1 && h < g.H; h += g.dil_h)
      for (int64_t w = w0; w < w1 && w < g.W; w += g.dil_w) max_pool_take(F(xp[h * g.W + w]), h * g.W + w, best, best_index);
    y[i] = T(best);
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
          F best = math::lowest<F>();
          int64_t at = 2 * oh * g.W + w;
          const int64_t first = at;
          max_pool_take(F(r0[w]), first, best, at);
          max_pool_take(F(r0[w + 1]), first + 1, best, at);
          max_pool_take(F(r1[w]), first + g.W, best, at);
          max_pool_take(F(r1[w + 1]), first + g.W + 1, best, at);
          y[i + j] = T(best);
          if (indices) indices[i + j] = at;
        }
      }
      for (; j < n; ++j) {
        const int64_t ow = ow0 + j;
        int64_t w0 = ow * g.stride_w - g.pad_w;
        while (w0 < 0) w0 += g.dil_w;
        int64_t w1 = ow * g.stride_w - g.pad_w + (g.kw - 1) * g.dil_w + 1;
        w1 = w1 < g.W ? w1 : g.W;
        F best = math::lowest<F>();
        int64_t best_index = h0 * g.W + w0;
        for (int64_t h = h0; h < h1; h += g.dil_h)
          for (int64_t w = w0; w < w1; w += g.dil_w) {
            max_pool_take(F(xp[h * g.W + w]), h * g.W + w, best, best_index);
          }
        y[i + j] = T(best);
        if (indices) indices[i + j] = best_index;
      }
      i += n;
    }
  }
};

// One input element per call: the sum of grad_out over the windows whose argmax is this pixel.
template <class T>
struct MaxPool2dBackwardKernel {
  using F = opmath_t<T>;
  const T* grad_out;
  const int64_t* indices;
  T* grad_in;
  Pool2dGeometry g;
  // Windows that can contain row h: oh * s - p <= h <= oh * s - p + (k - 1) * d (the same for columns).
  TS_HD static void window_range(int64_t h, int64_t k, int64_t s, int64_t p, int64_t d, int64_t n_out, int64_t& lo,
                                 int64_t& hi) {
    lo = math::ceil_div_nonneg(h + p - (k - 1) * d, s);
    hi = (h + p) / s;
    hi = hi < n_out - 1 ? hi : n_out - 1;
  }
  TS_HD F gather(int64_t h, int64_t w, int64_t plane, int64_t oh_lo, int64_t oh_hi) const {
    int64_t ow_lo, ow_hi;
    window_range(w, g.kw, g.stride_w, g.pad_w, g.dil_w, g.Wo, ow_lo, ow_hi);
    const int64_t target = h * g.W + w, base = plane * g.Ho * g.Wo;
    F acc = 0;
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh)
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow)
        if (indices[base + oh * g.Wo + ow] == target) acc += F(grad_out[base + oh * g.Wo + ow]);
    return acc;
  }
  TS_HD void operator()(int64_t i) const {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, plane = i / (g.W * g.H);
    int64_t oh_lo, oh_hi;
    window_range(h, g.kh, g.stride_h, g.pad_h, g.dil_h, g.Ho, oh_lo, oh_hi);
    grad_in[i] = T(gather(h, w, plane, oh_lo, oh_hi));
  }
  void range(int64_t b, int64_t e) const {  // one input row at a time: its windows' rows found once
    for (int64_t i = b; i < e;) {
      const int64_t w0 = i % g.W, h = (i / g.W) % g.H, plane = i / (g.W * g.H);
      const int64_t n = g.W - w0 < e - i ? g.W - w0 : e - i;
      int64_t oh_lo, oh_hi;
      window_range(h, g.kh, g.stride_h, g.pad_h, g.dil_h, g.Ho, oh_lo, oh_hi);
      T* out = grad_in + i;
      if (g.kh == 2 && g.kw == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 && g.pad_w == 0 && g.dil_h == 1 &&
          g.dil_w == 1) {
        // U-Net's 2x2 pool: each pixel lies in one window at most (none past the last full one).
        if (oh_lo > oh_hi) {
          for (int64_t j = 0; j < n; ++j) out[j] = T(0);
        } else {
          const int64_t base = plane * g.Ho * g.Wo + oh_lo * g.Wo, target0 = h * g.W;
          const int64_t* ix = indices + base;
          const T* go = grad_out + base;
          for (int64_t j = 0; j < n; ++j) {
            const int64_t w = w0 + j, ow = w >> 1;
            out[j] = ow < g.Wo && ix[ow] == target0 + w ? go[ow] : T(0);
          }
        }
      } else {
        for (int64_t j = 0; j < n; ++j) out[j] = T(gather(h, w0 + j, plane, oh_lo, oh_hi));
      }
      i += n;
    }
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
  dispatch_floating_with_half(x.dtype(), "max_pool2d", [&]<class T>() {
    L(y.numel(), MaxPool2dKernel<T>{x.data<T>(), y.data<T>(), indices.defined() ? indices.data<int64_t>() : nullptr, g},
      "max_pool2d_kernel");
  });
}

template <class Launch>
void max_pool2d_backward_impl(const Launch& L, const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices,
                              const Pool2dGeometry& g) {
  dispatch_floating_with_half(grad_out.dtype(), "max_pool2d_backward", [&]<class T>() {
    L(grad_in.numel(), MaxPool2dBackwardKernel<T>{grad_out.data<T>(), indices.data<int64_t>(), grad_in.data<T>(), g},
      "max_pool2d_backward_kernel");
  });
}

}  // namespace tessera
