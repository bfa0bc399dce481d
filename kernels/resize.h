// Resampling of NCHW planes: bilinear (both align_corners) and nearest, with PyTorch's source-index
// rules computed in the tensor's own precision (as its CPU kernels do), so indices and weights
// match to the last bit. Both backwards are gathers: each input pixel visits the few output pixels
// that read it (found by inverting the monotone index map, then re-checked with the forward map),
// so there are no atomics and the result does not depend on scheduling, on either device.
#pragma once

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/math.h"

namespace tessera {

// One axis of a resampling: input size, output size, and how source positions are computed.
template <class T>
struct Axis {
  int64_t in, out;
  T scale;             // PyTorch's area_pixel_compute_scale / compute_scales_value
  bool align_corners;  // bilinear only

  // Bilinear: the two source indices and their weights for output index d.
  TS_HD void linear(int64_t d, int64_t& i0, int64_t& i1, T& l0, T& l1) const {
    T src = align_corners ? scale * static_cast<T>(d) : scale * (static_cast<T>(d) + T(0.5)) - T(0.5);
    if (!align_corners && src < T(0)) src = T(0);
    i0 = static_cast<int64_t>(src);
    i1 = i0 + (i0 < in - 1 ? 1 : 0);
    T lambda = src - static_cast<T>(i0);
    lambda = lambda < T(0) ? T(0) : (lambda > T(1) ? T(1) : lambda);
    l1 = lambda;
    l0 = T(1) - lambda;
  }

  // Nearest: PyTorch's nearest_idx (the scale in float, as PyTorch computes it; out == in and
  // out == 2 * in take its exact shortcuts).
  TS_HD int64_t nearest(int64_t d) const {
    if (out == in) return d;
    if (out == 2 * in) return d >> 1;
    const float s = static_cast<float>(scale);
    const int64_t i = static_cast<int64_t>(floorf(static_cast<float>(d) * s));
    return i < in - 1 ? i : in - 1;
  }

  // Output indices [lo, hi] that may read input index i (a superset; callers re-check).
  TS_HD void readers(int64_t i, bool bilinear, int64_t& lo, int64_t& hi) const {
    if (scale <= T(0)) {  // every output reads index 0
      lo = 0;
      hi = i == 0 ? out - 1 : -1;
      return;
    }
    // Invert src(d) for src in [i - 1, i + 1] (bilinear) or [i, i + 1) (nearest), with a margin.
    const double s = static_cast<double>(scale);
    const double a = bilinear ? static_cast<double>(i) - 1.0 : static_cast<double>(i);
    const double b = static_cast<double>(i) + 1.0;
    double dlo, dhi;
    if (bilinear && !align_corners) {
      dlo = (a + 0.5) / s - 0.5;
      dhi = (b + 0.5) / s - 0.5;
    } else {
      dlo = a / s;
      dhi = b / s;
    }
    lo = static_cast<int64_t>(floor(dlo)) - 2;
    hi = static_cast<int64_t>(ceil(dhi)) + 2;
    lo = lo < 0 ? 0 : lo;
    hi = hi > out - 1 ? out - 1 : hi;
  }
};

template <class T>
struct BilinearKernel {
  const T* x;
  T* y;
  Axis<T> ah, aw;
  TS_HD void operator()(int64_t i) const {
    const int64_t ow = i % aw.out, oh = (i / aw.out) % ah.out, plane = i / (aw.out * ah.out);
    int64_t h0, h1, w0, w1;
    T lh0, lh1, lw0, lw1;
    ah.linear(oh, h0, h1, lh0, lh1);
    aw.linear(ow, w0, w1, lw0, lw1);
    const T* p = x + plane * ah.in * aw.in;
    y[i] = lh0 * (lw0 * p[h0 * aw.in + w0] + lw1 * p[h0 * aw.in + w1]) +
           lh1 * (lw0 * p[h1 * aw.in + w0] + lw1 * p[h1 * aw.in + w1]);
  }
};

template <class T>
struct BilinearBackwardKernel {
  const T* gy;
  T* gx;
  Axis<T> ah, aw;
  TS_HD void operator()(int64_t i) const {
    const int64_t w = i % aw.in, h = (i / aw.in) % ah.in, plane = i / (aw.in * ah.in);
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    ah.readers(h, true, oh_lo, oh_hi);
    aw.readers(w, true, ow_lo, ow_hi);
    const T* g = gy + plane * ah.out * aw.out;
    T acc = 0;
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
      int64_t h0, h1;
      T lh0, lh1;
      ah.linear(oh, h0, h1, lh0, lh1);
      const T wh = (h0 == h ? lh0 : T(0)) + (h1 == h ? lh1 : T(0));
      if (wh == T(0)) continue;
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow) {
        int64_t w0, w1;
        T lw0, lw1;
        aw.linear(ow, w0, w1, lw0, lw1);
        const T ww = (w0 == w ? lw0 : T(0)) + (w1 == w ? lw1 : T(0));
        if (ww != T(0)) acc += wh * ww * g[oh * aw.out + ow];
      }
    }
    gx[i] = acc;
  }
};

template <class T>
struct NearestKernel {
  const T* x;
  T* y;
  Axis<T> ah, aw;
  TS_HD void operator()(int64_t i) const {
    const int64_t ow = i % aw.out, oh = (i / aw.out) % ah.out, plane = i / (aw.out * ah.out);
    y[i] = x[plane * ah.in * aw.in + ah.nearest(oh) * aw.in + aw.nearest(ow)];
  }
};

template <class T>
struct NearestBackwardKernel {
  const T* gy;
  T* gx;
  Axis<T> ah, aw;
  TS_HD void operator()(int64_t i) const {
    const int64_t w = i % aw.in, h = (i / aw.in) % ah.in, plane = i / (aw.in * ah.in);
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    ah.readers(h, false, oh_lo, oh_hi);
    aw.readers(w, false, ow_lo, ow_hi);
    const T* g = gy + plane * ah.out * aw.out;
    T acc = 0;
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
      if (ah.nearest(oh) != h) continue;
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow)
        if (aw.nearest(ow) == w) acc += g[oh * aw.out + ow];
    }
    gx[i] = acc;
  }
};

enum class ResizeMode { Nearest, Bilinear };

// One axis as PyTorch sets it up: scale_factor > 0 means the user gave one (used as 1/scale).
template <class T>
Axis<T> make_axis(int64_t in, int64_t out, double scale_factor, bool align_corners, ResizeMode mode) {
  Axis<T> a{in, out, T(0), align_corners};
  if (mode == ResizeMode::Bilinear && align_corners) {
    a.scale = out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  } else if (mode == ResizeMode::Nearest) {
    a.scale = static_cast<T>(scale_factor > 0 ? static_cast<float>(1.0 / scale_factor)
                                              : static_cast<float>(in) / static_cast<float>(out));
  } else {
    a.scale = scale_factor > 0 ? static_cast<T>(1.0 / scale_factor) : static_cast<T>(in) / static_cast<T>(out);
  }
  return a;
}

struct ResizeParams {
  int64_t planes, H, W, Ho, Wo;
  double scale_h, scale_w;  // user scale factors, or 0
  bool align_corners;
  ResizeMode mode;
};

void resize_kernel(const Tensor& y, const Tensor& x, const ResizeParams& p);
void resize_backward_kernel(const Tensor& gx, const Tensor& gy, const ResizeParams& p);
void resize_kernel_cpu(const Tensor& y, const Tensor& x, const ResizeParams& p);
void resize_backward_kernel_cpu(const Tensor& gx, const Tensor& gy, const ResizeParams& p);
void resize_kernel_cuda(const Tensor& y, const Tensor& x, const ResizeParams& p);
void resize_backward_kernel_cuda(const Tensor& gx, const Tensor& gy, const ResizeParams& p);

template <class Launch>
void resize_impl(const Launch& L, const Tensor& y, const Tensor& x, const ResizeParams& p) {
  dispatch_floating(x.dtype(), "interpolate", [&]<class T>() {
    const Axis<T> ah = make_axis<T>(p.H, p.Ho, p.scale_h, p.align_corners, p.mode);
    const Axis<T> aw = make_axis<T>(p.W, p.Wo, p.scale_w, p.align_corners, p.mode);
    if (p.mode == ResizeMode::Bilinear) L(y.numel(), BilinearKernel<T>{x.data<T>(), y.data<T>(), ah, aw}, "bilinear_kernel");
    else L(y.numel(), NearestKernel<T>{x.data<T>(), y.data<T>(), ah, aw}, "nearest_kernel");
  });
}

template <class Launch>
void resize_backward_impl(const Launch& L, const Tensor& gx, const Tensor& gy, const ResizeParams& p) {
  dispatch_floating(gy.dtype(), "interpolate_backward", [&]<class T>() {
    const Axis<T> ah = make_axis<T>(p.H, p.Ho, p.scale_h, p.align_corners, p.mode);
    const Axis<T> aw = make_axis<T>(p.W, p.Wo, p.scale_w, p.align_corners, p.mode);
    if (p.mode == ResizeMode::Bilinear)
      L(gx.numel(), BilinearBackwardKernel<T>{gy.data<T>(), gx.data<T>(), ah, aw}, "bilinear_backward_kernel");
    else
      L(gx.numel(), NearestBackwardKernel<T>{gy.data<T>(), gx.data<T>(), ah, aw}, "nearest_backward_kernel");
  });
}

}  // namespace tessera
