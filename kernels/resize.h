// Resampling of NCHW planes: bilinear (both align_corners) and nearest, with PyTorch's source-index
// rules computed in the tensor's own precision (as its CPU kernels do), so indices and weights
// match to the last bit. The rules are evaluated once per axis on the host into small tables
// (kernels/resize.cpp); the kernels read them. Both backwards are gathers over the tables'
// reader lists: each input pixel sums the output pixels that read it, so there are no atomics and
// the result does not depend on scheduling, on either device.
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

};

// Per-axis tables, built once per call on the host from Axis<T> (so they hold exactly the forward
// math): for each output index its two source indices and weights, and for each input index the
// list of (output index, weight) pairs that read it (CSR: readers[start[i] .. start[i + 1])).
template <class T>
struct AxisTable {
  const int64_t* i0;
  const int64_t* i1;
  const T* l0;
  const T* l1;
  const int64_t* start;   // in + 1 entries
  const int64_t* reader;  // output indices
  const T* weight;        // their weights
};

template <class T>
struct BilinearKernel {
  const T* x;
  T* y;
  AxisTable<T> th, tw;
  int64_t H, W, Ho, Wo;
  TS_HD void operator()(int64_t i) const {
    const int64_t ow = i % Wo, oh = (i / Wo) % Ho, plane = i / (Wo * Ho);
    const T* p = x + plane * H * W;
    const int64_t h0 = th.i0[oh], h1 = th.i1[oh], w0 = tw.i0[ow], w1 = tw.i1[ow];
    y[i] = th.l0[oh] * (tw.l0[ow] * p[h0 * W + w0] + tw.l1[ow] * p[h0 * W + w1]) +
           th.l1[oh] * (tw.l0[ow] * p[h1 * W + w0] + tw.l1[ow] * p[h1 * W + w1]);
  }
  void range(int64_t b, int64_t e) const {
    for (int64_t i = b; i < e;) {  // one output row at a time: the row's h terms once
      const int64_t ow0 = i % Wo, oh = (i / Wo) % Ho, plane = i / (Wo * Ho);
      const int64_t n = Wo - ow0 < e - i ? Wo - ow0 : e - i;
      const T* r0 = x + (plane * H + th.i0[oh]) * W;
      const T* r1 = x + (plane * H + th.i1[oh]) * W;
      const T a0 = th.l0[oh], a1 = th.l1[oh];
      T* out = y + i;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t ow = ow0 + j, w0 = tw.i0[ow], w1 = tw.i1[ow];
        out[j] = a0 * (tw.l0[ow] * r0[w0] + tw.l1[ow] * r0[w1]) + a1 * (tw.l0[ow] * r1[w0] + tw.l1[ow] * r1[w1]);
      }
      i += n;
    }
  }
};

template <class T>
struct NearestKernel {
  const T* x;
  T* y;
  AxisTable<T> th, tw;
  int64_t H, W, Ho, Wo;
  TS_HD void operator()(int64_t i) const {
    const int64_t ow = i % Wo, oh = (i / Wo) % Ho, plane = i / (Wo * Ho);
    y[i] = x[(plane * H + th.i0[oh]) * W + tw.i0[ow]];
  }
};

// Each input pixel sums its readers: sum over (oh, wh) reading row h and (ow, ww) reading column w
// of wh * ww * gy[oh, ow]. Bilinear and nearest alike (nearest weights are 1).
template <class T>
struct ResizeBackwardKernel {
  const T* gy;
  T* gx;
  AxisTable<T> th, tw;
  int64_t H, W, Ho, Wo;
  TS_HD void operator()(int64_t i) const {
    const int64_t w = i % W, h = (i / W) % H, plane = i / (W * H);
    const T* g = gy + plane * Ho * Wo;
    T acc = 0;
    for (int64_t a = th.start[h]; a < th.start[h + 1]; ++a) {
      const T* row = g + th.reader[a] * Wo;
      T inner = 0;
      for (int64_t b = tw.start[w]; b < tw.start[w + 1]; ++b) inner += tw.weight[b] * row[tw.reader[b]];
      acc += th.weight[a] * inner;
    }
    gx[i] = acc;
  }
  void range(int64_t b, int64_t e) const {
    for (int64_t i = b; i < e;) {  // one input row at a time
      const int64_t w0 = i % W, h = (i / W) % H, plane = i / (W * H);
      const int64_t n = W - w0 < e - i ? W - w0 : e - i;
      T* out = gx + i;
      for (int64_t j = 0; j < n; ++j) out[j] = T(0);
      for (int64_t a = th.start[h]; a < th.start[h + 1]; ++a) {
        const T* row = gy + (plane * Ho + th.reader[a]) * Wo;
        const T wh = th.weight[a];
        for (int64_t j = 0; j < n; ++j) {
          const int64_t w = w0 + j;
          T inner = 0;
          for (int64_t c = tw.start[w]; c < tw.start[w + 1]; ++c) inner += tw.weight[c] * row[tw.reader[c]];
          out[j] += wh * inner;
        }
      }
      i += n;
    }
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
struct ResizeTables;
void resize_kernel_cpu(const Tensor& y, const Tensor& x, const ResizeParams& p, const ResizeTables& t);
void resize_backward_kernel_cpu(const Tensor& gx, const Tensor& gy, const ResizeParams& p, const ResizeTables& t);
void resize_kernel_cuda(const Tensor& y, const Tensor& x, const ResizeParams& p, const ResizeTables& t);
void resize_backward_kernel_cuda(const Tensor& gx, const Tensor& gy, const ResizeParams& p, const ResizeTables& t);

// The tables of both axes, as tensors on the target device (built on the host in T).
struct ResizeTables {
  Tensor ints, reals;  // per axis: i0 | i1 | start | reader; l0 | l1 | weight
  int64_t h_nnz, w_nnz;
};
ResizeTables make_resize_tables(const ResizeParams& p, DType dtype, Device device);

template <class T>
void axis_table_views(const ResizeTables& t, const ResizeParams& p, AxisTable<T>& th, AxisTable<T>& tw) {
  const int64_t* ints = t.ints.data<int64_t>();
  const T* reals = t.reals.data<T>();
  auto fill = [&](AxisTable<T>& a, int64_t in, int64_t out, int64_t nnz) {
    a.i0 = ints;
    a.i1 = ints + out;
    a.start = ints + 2 * out;
    a.reader = ints + 2 * out + in + 1;
    a.l0 = reals;
    a.l1 = reals + out;
    a.weight = reals + 2 * out;
    ints += 2 * out + in + 1 + nnz;
    reals += 2 * out + nnz;
  };
  fill(th, p.H, p.Ho, t.h_nnz);
  fill(tw, p.W, p.Wo, t.w_nnz);
}

template <class Launch>
void resize_impl(const Launch& L, const Tensor& y, const Tensor& x, const ResizeParams& p, const ResizeTables& t) {
  dispatch_floating(x.dtype(), "interpolate", [&]<class T>() {
    AxisTable<T> th{}, tw{};
    axis_table_views(t, p, th, tw);
    if (p.mode == ResizeMode::Bilinear)
      L(y.numel(), BilinearKernel<T>{x.data<T>(), y.data<T>(), th, tw, p.H, p.W, p.Ho, p.Wo}, "bilinear_kernel");
    else
      L(y.numel(), NearestKernel<T>{x.data<T>(), y.data<T>(), th, tw, p.H, p.W, p.Ho, p.Wo}, "nearest_kernel");
  });
}

template <class Launch>
void resize_backward_impl(const Launch& L, const Tensor& gx, const Tensor& gy, const ResizeParams& p, const ResizeTables& t) {
  dispatch_floating(gy.dtype(), "interpolate_backward", [&]<class T>() {
    AxisTable<T> th{}, tw{};
    axis_table_views(t, p, th, tw);
    L(gx.numel(), ResizeBackwardKernel<T>{gy.data<T>(), gx.data<T>(), th, tw, p.H, p.W, p.Ho, p.Wo}, "resize_backward_kernel");
  });
}

}  // namespace tessera
