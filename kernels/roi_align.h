// RoIAlign with torchvision's exact semantics (roi_align_kernel.cpp): rois [K, 5] (batch index,
// x1, y1, x2, y2) scaled by spatial_scale, the aligned half-pixel shift, adaptive sampling when
// sampling_ratio <= 0, samples outside [-1, size] contributing 0, and the clamping rules of its
// bilinear_interpolate. The sampling geometry and bilinear weights live once here. CUDA runs the
// functors below, one output element per thread (the backward scatters with atomicAdd, as
// torchvision does); the CPU traversal (kernels/cpu/roi_align.cpp) computes each roi's taps once
// and reuses them across channels.
//
// multi_scale_roi_align runs the same functors with a per-roi level filter: one launch per FPN
// level, the levels computed on the device (no host round-trip).
#pragma once

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/math.h"

namespace tessera {

struct RoiAlignParams {
  int64_t N, C, H, W;  // the feature map
  int64_t K, PH, PW;   // rois and output size
  double spatial_scale;
  int64_t sampling_ratio;
  bool aligned;
};

// The four taps of one sample and their weights; valid == false: the sample contributes nothing.
template <class T>
struct BilinearTaps {
  bool valid;
  int64_t y_low, x_low, y_high, x_high;
  T w1, w2, w3, w4;
};

template <class T>
TS_HD BilinearTaps<T> roi_bilinear_taps(T y, T x, int64_t height, int64_t width) {
  BilinearTaps<T> t{};
  if (y < T(-1) || y > T(height) || x < T(-1) || x > T(width)) {
    t.valid = false;
    return t;
  }
  t.valid = true;
  if (y <= T(0)) y = T(0);
  if (x <= T(0)) x = T(0);
  t.y_low = static_cast<int64_t>(y);
  t.x_low = static_cast<int64_t>(x);
  if (t.y_low >= height - 1) {
    t.y_high = t.y_low = height - 1;
    y = T(t.y_low);
  } else {
    t.y_high = t.y_low + 1;
  }
  if (t.x_low >= width - 1) {
    t.x_high = t.x_low = width - 1;
    x = T(t.x_low);
  } else {
    t.x_high = t.x_low + 1;
  }
  const T ly = y - T(t.y_low), lx = x - T(t.x_low);
  const T hy = T(1) - ly, hx = T(1) - lx;
  t.w1 = hy * hx;
  t.w2 = hy * lx;
  t.w3 = ly * hx;
  t.w4 = ly * lx;
  return t;
}

// The sampling grid of one roi.
template <class T>
struct RoiGrid {
  int64_t batch;
  T start_h, start_w, bin_h, bin_w;
  int64_t grid_h, grid_w;
  T count;
};

template <class T>
TS_HD RoiGrid<T> roi_grid(const T* roi, const RoiAlignParams& p) {
  RoiGrid<T> g;
  g.batch = static_cast<int64_t>(roi[0]);
  const T offset = p.aligned ? T(0.5) : T(0);
  const T scale = static_cast<T>(p.spatial_scale);
  g.start_w = roi[1] * scale - offset;
  g.start_h = roi[2] * scale - offset;
  const T end_w = roi[3] * scale - offset, end_h = roi[4] * scale - offset;
  T roi_w = end_w - g.start_w, roi_h = end_h - g.start_h;
  if (!p.aligned) {  // legacy behaviour: force malformed rois to be 1x1
    roi_w = roi_w > T(1) ? roi_w : T(1);
    roi_h = roi_h > T(1) ? roi_h : T(1);
  }
  g.bin_h = roi_h / static_cast<T>(p.PH);
  g.bin_w = roi_w / static_cast<T>(p.PW);
  g.grid_h = p.sampling_ratio > 0 ? p.sampling_ratio : static_cast<int64_t>(math::ceil(roi_h / static_cast<T>(p.PH)));
  g.grid_w = p.sampling_ratio > 0 ? p.sampling_ratio : static_cast<int64_t>(math::ceil(roi_w / static_cast<T>(p.PW)));
  const int64_t n = g.grid_h * g.grid_w;
  g.count = static_cast<T>(n > 1 ? n : 1);
  return g;
}

// levels == nullptr: every roi; otherwise only rois with levels[k] == level.
template <class T>
struct RoiAlignKernel {
  const T* input;
  const T* rois;
  T* output;
  RoiAlignParams p;
  const int64_t* levels;
  int64_t level;
  TS_HD void operator()(int64_t i) const {
    const int64_t pw = i % p.PW, ph = (i / p.PW) % p.PH, c = (i / (p.PW * p.PH)) % p.C, k = i / (p.PW * p.PH * p.C);
    if (levels && levels[k] != level) return;
    const RoiGrid<T> g = roi_grid(rois + k * 5, p);
    const T* plane = input + (g.batch * p.C + c) * p.H * p.W;
    T acc = 0;
    for (int64_t iy = 0; iy < g.grid_h; ++iy) {
      const T y = g.start_h + static_cast<T>(ph) * g.bin_h + (static_cast<T>(iy) + T(0.5)) * g.bin_h / static_cast<T>(g.grid_h);
      for (int64_t ix = 0; ix < g.grid_w; ++ix) {
        const T x = g.start_w + static_cast<T>(pw) * g.bin_w + (static_cast<T>(ix) + T(0.5)) * g.bin_w / static_cast<T>(g.grid_w);
        const BilinearTaps<T> t = roi_bilinear_taps(y, x, p.H, p.W);
        if (!t.valid) continue;
        acc += t.w1 * plane[t.y_low * p.W + t.x_low] + t.w2 * plane[t.y_low * p.W + t.x_high] +
               t.w3 * plane[t.y_high * p.W + t.x_low] + t.w4 * plane[t.y_high * p.W + t.x_high];
      }
    }
    output[i] = acc / g.count;
  }
};

template <class T>
struct RoiAlignBackwardKernel {
  const T* grad_output;
  const T* rois;
  T* grad_input;
  RoiAlignParams p;
  const int64_t* levels;
  int64_t level;
  TS_HD void operator()(int64_t i) const {
    const int64_t pw = i % p.PW, ph = (i / p.PW) % p.PH, c = (i / (p.PW * p.PH)) % p.C, k = i / (p.PW * p.PH * p.C);
    if (levels && levels[k] != level) return;
    const RoiGrid<T> g = roi_grid(rois + k * 5, p);
    T* plane = grad_input + (g.batch * p.C + c) * p.H * p.W;
    const T go = grad_output[i] / g.count;
    for (int64_t iy = 0; iy < g.grid_h; ++iy) {
      const T y = g.start_h + static_cast<T>(ph) * g.bin_h + (static_cast<T>(iy) + T(0.5)) * g.bin_h / static_cast<T>(g.grid_h);
      for (int64_t ix = 0; ix < g.grid_w; ++ix) {
        const T x = g.start_w + static_cast<T>(pw) * g.bin_w + (static_cast<T>(ix) + T(0.5)) * g.bin_w / static_cast<T>(g.grid_w);
        const BilinearTaps<T> t = roi_bilinear_taps(y, x, p.H, p.W);
        if (!t.valid) continue;
        atomic_add(plane + t.y_low * p.W + t.x_low, go * t.w1);
        atomic_add(plane + t.y_low * p.W + t.x_high, go * t.w2);
        atomic_add(plane + t.y_high * p.W + t.x_low, go * t.w3);
        atomic_add(plane + t.y_high * p.W + t.x_high, go * t.w4);
      }
    }
  }
};

// torchvision's LevelMapper: floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps),
// clamped to [k_min, k_max], minus k_min.
template <class T>
struct RoiLevelKernel {
  const T* rois;
  int64_t* levels;
  double canonical_scale, canonical_level;
  int64_t k_min, k_max;
  TS_HD void operator()(int64_t k) const {
    const T* r = rois + k * 5;
    const T s = math::sqrt((r[3] - r[1]) * (r[4] - r[2]));
    const T lvl = math::floor(static_cast<T>(canonical_level) + math::log2(s / static_cast<T>(canonical_scale)) +
                              static_cast<T>(1e-6));
    T clamped = lvl < static_cast<T>(k_min) ? static_cast<T>(k_min) : lvl;
    clamped = clamped > static_cast<T>(k_max) ? static_cast<T>(k_max) : clamped;
    levels[k] = static_cast<int64_t>(clamped) - k_min;
  }
};

// input [N, C, H, W], rois [K, 5], output [K, C, PH, PW]: contiguous, one dtype. levels: [K] or undefined.
void roi_align_kernel(const Tensor& output, const Tensor& input, const Tensor& rois, const RoiAlignParams& p,
                      const Tensor& levels, int64_t level);
// grad_input must be zero-filled by the caller.
void roi_align_backward_kernel(const Tensor& grad_input, const Tensor& grad_output, const Tensor& rois,
                               const RoiAlignParams& p, const Tensor& levels, int64_t level);
void roi_levels_kernel(const Tensor& levels, const Tensor& rois, double canonical_scale, double canonical_level,
                       int64_t k_min, int64_t k_max);
void roi_align_kernel_cpu(const Tensor& output, const Tensor& input, const Tensor& rois, const RoiAlignParams& p,
                          const Tensor& levels, int64_t level);
void roi_align_backward_kernel_cpu(const Tensor& grad_input, const Tensor& grad_output, const Tensor& rois,
                                   const RoiAlignParams& p, const Tensor& levels, int64_t level);
void roi_levels_kernel_cpu(const Tensor& levels, const Tensor& rois, double canonical_scale, double canonical_level,
                           int64_t k_min, int64_t k_max);
void roi_align_kernel_cuda(const Tensor& output, const Tensor& input, const Tensor& rois, const RoiAlignParams& p,
                           const Tensor& levels, int64_t level);
void roi_align_backward_kernel_cuda(const Tensor& grad_input, const Tensor& grad_output, const Tensor& rois,
                                    const RoiAlignParams& p, const Tensor& levels, int64_t level);
void roi_levels_kernel_cuda(const Tensor& levels, const Tensor& rois, double canonical_scale, double canonical_level,
                            int64_t k_min, int64_t k_max);

template <class Launch>
void roi_align_impl(const Launch& L, const Tensor& output, const Tensor& input, const Tensor& rois,
                    const RoiAlignParams& p, const Tensor& levels, int64_t level) {
  dispatch_floating(input.dtype(), "roi_align", [&]<class T>() {
    L(output.numel(),
      RoiAlignKernel<T>{input.data<T>(), rois.data<T>(), output.data<T>(), p,
                        levels.defined() ? levels.data<int64_t>() : nullptr, level},
      "roi_align_kernel");
  });
}

template <class Launch>
void roi_align_backward_impl(const Launch& L, const Tensor& grad_input, const Tensor& grad_output, const Tensor& rois,
                             const RoiAlignParams& p, const Tensor& levels, int64_t level) {
  dispatch_floating(grad_output.dtype(), "roi_align_backward", [&]<class T>() {
    L(grad_output.numel(),
      RoiAlignBackwardKernel<T>{grad_output.data<T>(), rois.data<T>(), grad_input.data<T>(), p,
                                levels.defined() ? levels.data<int64_t>() : nullptr, level},
      "roi_align_backward_kernel");
  });
}

template <class Launch>
void roi_levels_impl(const Launch& L, const Tensor& levels, const Tensor& rois, double canonical_scale,
                     double canonical_level, int64_t k_min, int64_t k_max) {
  dispatch_floating(rois.dtype(), "multi_scale_roi_align", [&]<class T>() {
    L(levels.numel(), RoiLevelKernel<T>{rois.data<T>(), levels.data<int64_t>(), canonical_scale, canonical_level, k_min, k_max},
      "roi_level_kernel");
  });
}

}  // namespace tessera
