// Padding of the last two dims of a [P, H, W] block: constant (any sign of pad: negative crops)
// and reflect (mirror without repeating the edge, as torch.nn.functional.pad). The backward is a
// gather: each input pixel sums the output pixels that copied it (one for constant; up to three
// per axis for reflect), so both devices run one body without atomics.
#pragma once

#include "core/parallel.h"
#include "core/tensor.h"

namespace tessera {

struct PadGeometry {
  int64_t P, H, W, Ho, Wo;
  int64_t top, left;  // pads before (may be negative for constant)
  bool reflect;
};

// The input index that output index o of an axis reads, or -1 (constant padding).
TS_HD int64_t pad_source(int64_t o, int64_t before, int64_t n, bool reflect) {
  int64_t i = o - before;
  if (!reflect) return (i >= 0 && i < n) ? i : -1;
  if (i < 0) i = -i;
  if (i >= n) i = 2 * (n - 1) - i;
  return i;
}

template <class T>
struct PadKernel {
  const T* x;
  T* y;
  PadGeometry g;
  T value;
  TS_HD void operator()(int64_t i) const {
    const int64_t ow = i % g.Wo, oh = (i / g.Wo) % g.Ho, plane = i / (g.Wo * g.Ho);
    const int64_t h = pad_source(oh, g.top, g.H, g.reflect), w = pad_source(ow, g.left, g.W, g.reflect);
    y[i] = (h < 0 || w < 0) ? value : x[(plane * g.H + h) * g.W + w];
  }
};

template <class T>
struct PadBackwardKernel {
  const T* gy;
  T* gx;
  PadGeometry g;
  // Distinct output indices of an axis that read input index i: the direct copy and, for reflect,
  // the mirror images on either side.
  TS_HD int candidates(int64_t i, int64_t before, int64_t n, int64_t out_n, int64_t (&o)[3]) const {
    const int64_t c[3] = {i + before, before - i, before + 2 * (n - 1) - i};
    int k = 0;
    for (int t = 0; t < (g.reflect ? 3 : 1); ++t) {
      if (c[t] < 0 || c[t] >= out_n || pad_source(c[t], before, n, g.reflect) != i) continue;
      bool seen = false;
      for (int u = 0; u < k; ++u) seen = seen || o[u] == c[t];
      if (!seen) o[k++] = c[t];
    }
    return k;
  }
  TS_HD void operator()(int64_t i) const {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, plane = i / (g.W * g.H);
    int64_t oh[3], ow[3];
    const int kh = candidates(h, g.top, g.H, g.Ho, oh), kw = candidates(w, g.left, g.W, g.Wo, ow);
    T acc = 0;
    for (int a = 0; a < kh; ++a)
      for (int b = 0; b < kw; ++b) acc += gy[(plane * g.Ho + oh[a]) * g.Wo + ow[b]];
    gx[i] = acc;
  }
};

void pad_kernel(const Tensor& y, const Tensor& x, const PadGeometry& g, double value);
void pad_backward_kernel(const Tensor& gx, const Tensor& gy, const PadGeometry& g);
void pad_kernel_cpu(const Tensor& y, const Tensor& x, const PadGeometry& g, double value);
void pad_backward_kernel_cpu(const Tensor& gx, const Tensor& gy, const PadGeometry& g);
void pad_kernel_cuda(const Tensor& y, const Tensor& x, const PadGeometry& g, double value);
void pad_backward_kernel_cuda(const Tensor& gx, const Tensor& gy, const PadGeometry& g);

template <class Launch>
void pad_impl(const Launch& L, const Tensor& y, const Tensor& x, const PadGeometry& g, double value) {
  dispatch_all_with_half(x.dtype(), "pad", [&]<class T>() {
    L(y.numel(), PadKernel<T>{x.data<T>(), y.data<T>(), g, static_cast<T>(value)}, "pad_kernel");
  });
}

template <class Launch>
void pad_backward_impl(const Launch& L, const Tensor& gx, const Tensor& gy, const PadGeometry& g) {
  dispatch_floating(gy.dtype(), "pad_backward", [&]<class T>() {
    L(gx.numel(), PadBackwardKernel<T>{gy.data<T>(), gx.data<T>(), g}, "pad_backward_kernel");
  });
}

}  // namespace tessera
