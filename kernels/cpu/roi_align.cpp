// CPU RoIAlign. The sample geometry of each roi (the four taps and weights of every sample of
// every bin, from the shared roi_grid / roi_bilinear_taps) is computed once, for a chunk of rois,
// and reused across channels, as torchvision's pre_calc does. Then the work is split by feature
// plane (image, channel): one thread walks all rois of an image over one channel plane, which stays
// in cache, and — in the backward — is the only writer of that plane's gradient: no atomics, and
// the same result at any thread count.
#include <vector>

#include "kernels/roi_align.h"

namespace tessera {

namespace {

template <class T>
struct Tap {
  int32_t pos[4];
  T w[4];
};

template <class T>
struct RoiTaps {
  std::vector<int64_t> roi;     // rois of the chunk (those selected by the level filter)
  std::vector<int64_t> first;   // first tap of each roi (size + 1)
  std::vector<int64_t> samples; // samples per bin of each roi
  std::vector<T> count;         // divisor of each roi
  std::vector<int64_t> batch;
  std::vector<Tap<T>> taps;
};

// Rois [k0, k1) whose taps fit the budget, starting at k0 (at least one roi).
template <class T>
int64_t chunk_end(const T* rois, const RoiAlignParams& p, int64_t k0) {
  constexpr int64_t kBudget = int64_t{32} << 20;  // bytes of taps per chunk
  int64_t bytes = 0, k = k0;
  for (; k < p.K; ++k) {
    const RoiGrid<T> g = roi_grid(rois + k * 5, p);
    bytes += g.grid_h * g.grid_w * p.PH * p.PW * static_cast<int64_t>(sizeof(Tap<T>));
    if (bytes > kBudget && k > k0) break;
  }
  return k;
}

template <class T>
void build_taps(const T* rois, const RoiAlignParams& p, const int64_t* levels, int64_t level, int64_t k0, int64_t k1,
                RoiTaps<T>& out) {
  out = RoiTaps<T>{};
  out.first.push_back(0);
  for (int64_t k = k0; k < k1; ++k) {
    if (levels && levels[k] != level) continue;
    const RoiGrid<T> g = roi_grid(rois + k * 5, p);
    out.roi.push_back(k);
    out.samples.push_back(g.grid_h * g.grid_w);
    out.count.push_back(g.count);
    out.batch.push_back(g.batch);
    out.first.push_back(out.first.back() + g.grid_h * g.grid_w * p.PH * p.PW);
  }
  out.taps.resize(static_cast<size_t>(out.first.back()));
  parallel_chunks(static_cast<int64_t>(out.roi.size()), 1, [&](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) {
      const RoiGrid<T> g = roi_grid(rois + out.roi[r] * 5, p);
      Tap<T>* t = out.taps.data() + out.first[r];
      for (int64_t ph = 0; ph < p.PH; ++ph)
        for (int64_t pw = 0; pw < p.PW; ++pw)
          for (int64_t iy = 0; iy < g.grid_h; ++iy) {
            const T y = g.start_h + static_cast<T>(ph) * g.bin_h + (static_cast<T>(iy) + T(0.5)) * g.bin_h / static_cast<T>(g.grid_h);
            for (int64_t ix = 0; ix < g.grid_w; ++ix) {
              const T x = g.start_w + static_cast<T>(pw) * g.bin_w + (static_cast<T>(ix) + T(0.5)) * g.bin_w / static_cast<T>(g.grid_w);
              const BilinearTaps<T> s = roi_bilinear_taps(y, x, p.H, p.W);
              *t++ = s.valid ? Tap<T>{{static_cast<int32_t>(s.y_low * p.W + s.x_low), static_cast<int32_t>(s.y_low * p.W + s.x_high),
                                       static_cast<int32_t>(s.y_high * p.W + s.x_low), static_cast<int32_t>(s.y_high * p.W + s.x_high)},
                                      {s.w1, s.w2, s.w3, s.w4}}
                             : Tap<T>{{-1, 0, 0, 0}, {}};  // outside the map: skipped, as torchvision
            }
          }
    }
  });
}

// Calls f(plane index n * C + c, roi slot r) for every plane, each plane on one thread.
template <class T, class F>
void for_each_plane(const RoiTaps<T>& t, const RoiAlignParams& p, F f) {
  std::vector<std::vector<int64_t>> by_image(static_cast<size_t>(p.N));
  for (size_t r = 0; r < t.roi.size(); ++r) by_image[t.batch[r]].push_back(static_cast<int64_t>(r));
  parallel_for(p.N * p.C, [&](int64_t plane) {
    for (int64_t r : by_image[plane / p.C]) f(plane, r);
  }, 1);
}

}  // namespace

void roi_align_kernel_cpu(const Tensor& output, const Tensor& input, const Tensor& rois, const RoiAlignParams& p,
                          const Tensor& levels, int64_t level) {
  TS_CHECK(p.H * p.W < (int64_t{1} << 31), "roi_align: feature maps above 2^31 pixels are not supported on the CPU");
  dispatch_floating(input.dtype(), "roi_align", [&]<class T>() {
    const T* in = input.data<T>();
    const T* r = rois.data<T>();
    T* out = output.data<T>();
    const int64_t* lv = levels.defined() ? levels.data<int64_t>() : nullptr;
    const int64_t bins = p.PH * p.PW;
    RoiTaps<T> t;
    for (int64_t k0 = 0; k0 < p.K;) {
      const int64_t k1 = chunk_end(r, p, k0);
      build_taps(r, p, lv, level, k0, k1, t);
      for_each_plane(t, p, [&](int64_t plane, int64_t slot) {
        const T* x = in + plane * p.H * p.W;
        T* o = out + (t.roi[slot] * p.C + plane % p.C) * bins;
        const Tap<T>* taps = t.taps.data() + t.first[slot];
        const int64_t samples = t.samples[slot];
        for (int64_t bin = 0; bin < bins; ++bin) {
          T acc = 0;
          for (int64_t s = 0; s < samples; ++s, ++taps)
            if (taps->pos[0] >= 0)
              acc += taps->w[0] * x[taps->pos[0]] + taps->w[1] * x[taps->pos[1]] + taps->w[2] * x[taps->pos[2]] +
                     taps->w[3] * x[taps->pos[3]];
          o[bin] = acc / t.count[slot];
        }
      });
      k0 = k1;
    }
  });
}

void roi_align_backward_kernel_cpu(const Tensor& grad_input, const Tensor& grad_output, const Tensor& rois,
                                   const RoiAlignParams& p, const Tensor& levels, int64_t level) {
  TS_CHECK(p.H * p.W < (int64_t{1} << 31), "roi_align: feature maps above 2^31 pixels are not supported on the CPU");
  dispatch_floating(grad_output.dtype(), "roi_align_backward", [&]<class T>() {
    const T* go = grad_output.data<T>();
    const T* r = rois.data<T>();
    T* gi = grad_input.data<T>();
    const int64_t* lv = levels.defined() ? levels.data<int64_t>() : nullptr;
    const int64_t bins = p.PH * p.PW;
    RoiTaps<T> t;
    for (int64_t k0 = 0; k0 < p.K;) {
      const int64_t k1 = chunk_end(r, p, k0);
      build_taps(r, p, lv, level, k0, k1, t);
      for_each_plane(t, p, [&](int64_t plane, int64_t slot) {
        T* g = gi + plane * p.H * p.W;
        const T* o = go + (t.roi[slot] * p.C + plane % p.C) * bins;
        const Tap<T>* taps = t.taps.data() + t.first[slot];
        const int64_t samples = t.samples[slot];
        for (int64_t bin = 0; bin < bins; ++bin) {
          const T gv = o[bin] / t.count[slot];
          for (int64_t s = 0; s < samples; ++s, ++taps)
            if (taps->pos[0] >= 0)
              for (int q = 0; q < 4; ++q) g[taps->pos[q]] += gv * taps->w[q];
        }
      });
      k0 = k1;
    }
  });
}

}  // namespace tessera
