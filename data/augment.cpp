// Augmentation: one sampler for every warp, so that image, labels and weights move together.
#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "autograd/ops.h"
#include "core/parallel.h"
#include "core/view.h"

namespace tessera {

namespace {

// Mirror an index into [0, n) without repeating the edge (PyTorch's "reflect").
inline int64_t mirror(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// Keys' cubic convolution kernel with a = -0.75 (PyTorch's bicubic).
inline double cubic(double t) {
  constexpr double a = -0.75;
  t = std::fabs(t);
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
  return 0;
}

}  // namespace

Tensor identity_grid(int64_t H, int64_t W) {
  Tensor g = raw::empty({2, H, W}, DType::Float64, kCPU);
  double* p = g.data<double>();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      p[y * W + x] = static_cast<double>(y);
      p[H * W + y * W + x] = static_cast<double>(x);
    }
  return g;
}

Tensor upsample_displacements(const Tensor& coarse_in, int64_t H, int64_t W) {
  TS_CHECK(coarse_in.dim() == 3 && coarse_in.size(0) == 2 && coarse_in.size(1) >= 2 && coarse_in.size(2) >= 2,
           "upsample_displacements: expected [2, G, G']");
  Tensor coarse = raw::contiguous(raw::to(coarse_in, DType::Float64));
  const int64_t gh = coarse.size(1), gw = coarse.size(2);
  const double* c = coarse.data<double>();
  Tensor out = raw::empty({2, H, W}, DType::Float64, kCPU);
  double* o = out.data<double>();
  for (int64_t y = 0; y < H; ++y) {
    const double ty = H > 1 ? static_cast<double>(y) * static_cast<double>(gh - 1) / static_cast<double>(H - 1) : 0.0;
    const int64_t iy = static_cast<int64_t>(std::floor(ty));
    for (int64_t x = 0; x < W; ++x) {
      const double tx = W > 1 ? static_cast<double>(x) * static_cast<double>(gw - 1) / static_cast<double>(W - 1) : 0.0;
      const int64_t ix = static_cast<int64_t>(std::floor(tx));
      for (int64_t k = 0; k < 2; ++k) {
        double acc = 0;
        for (int64_t m = -1; m <= 2; ++m)
          for (int64_t n = -1; n <= 2; ++n) {
            const int64_t yy = std::clamp<int64_t>(iy + m, 0, gh - 1), xx = std::clamp<int64_t>(ix + n, 0, gw - 1);
            acc += cubic(ty - static_cast<double>(iy + m)) * cubic(tx - static_cast<double>(ix + n)) * c[(k * gh + yy) * gw + xx];
          }
        o[(k * H + y) * W + x] = acc;
      }
    }
  }
  return out;
}

Sample warp(const Sample& s, const Tensor& source_in) {
  TS_CHECK(s.image.defined() && s.image.dim() == 3, "warp: the sample needs an image [C, H, W]");
  const int64_t C = s.image.size(0), H = s.image.size(1), W = s.image.size(2);
  TS_CHECK(source_in.defined() && source_in.shape() == (Shape{2, H, W}), "warp: source coordinates must be [2, ", H, ", ", W, "]");
  Tensor source = raw::contiguous(raw::to(source_in, DType::Float64));
  const double* sy = source.data<double>();
  const double* sx = sy + H * W;
  auto bilinear = [&](const Tensor& t_in) {
    Tensor t = raw::contiguous(raw::to(t_in, DType::Float32));
    const int64_t planes = t.dim() == 3 ? t.size(0) : 1;
    Tensor out = raw::empty(t.shape(), DType::Float32, kCPU);
    const float* in = t.data<float>();
    float* o = out.data<float>();
    parallel_for(H, [&](int64_t y) {
      for (int64_t x = 0; x < W; ++x) {
        const double fy = sy[y * W + x], fx = sx[y * W + x];
        const double y0f = std::floor(fy), x0f = std::floor(fx);
        const double ly = fy - y0f, lx = fx - x0f;
        const int64_t y0 = static_cast<int64_t>(y0f), x0 = static_cast<int64_t>(x0f);
        const int64_t ya = mirror(y0, H), yb = mirror(y0 + 1, H), xa = mirror(x0, W), xb = mirror(x0 + 1, W);
        for (int64_t p = 0; p < planes; ++p) {
          const float* q = in + p * H * W;
          const double v = (1 - ly) * ((1 - lx) * q[ya * W + xa] + lx * q[ya * W + xb]) + ly * ((1 - lx) * q[yb * W + xa] + lx * q[yb * W + xb]);
          o[p * H * W + y * W + x] = static_cast<float>(v);
        }
      }
    }, 16);
    return out;
  };
  auto nearest = [&](const Tensor& t_in) {
    Tensor t = raw::contiguous(raw::to(t_in, kCPU));
    Tensor out = raw::empty(t.shape(), t.dtype(), kCPU);
    const int64_t planes = t.dim() == 3 ? t.size(0) : 1;
    const size_t es = element_size(t.dtype());
    const char* in = static_cast<const char*>(t.data_ptr());
    char* o = static_cast<char*>(out.data_ptr());
    parallel_for(H, [&](int64_t y) {
      for (int64_t x = 0; x < W; ++x) {
        const int64_t yy = mirror(static_cast<int64_t>(std::floor(sy[y * W + x] + 0.5)), H);
        const int64_t xx = mirror(static_cast<int64_t>(std::floor(sx[y * W + x] + 0.5)), W);
        for (int64_t p = 0; p < planes; ++p)
          std::memcpy(o + ((p * H + y) * W + x) * es, in + ((p * H + yy) * W + xx) * es, es);
      }
    }, 16);
    return out;
  };
  Sample r = s;
  r.image = bilinear(s.image);
  (void)C;
  if (s.weight.defined()) r.weight = bilinear(s.weight);
  if (s.mask.defined()) r.mask = nearest(s.mask);
  if (s.instances.defined()) r.instances = nearest(s.instances);
  if (s.masks.defined() && s.masks.size(0) > 0) r.masks = nearest(s.masks);
  TS_CHECK(!s.boxes.defined() || s.boxes.size(0) == 0, "warp: boxes cannot follow a non-rigid warp; warp masks and recompute boxes");
  return r;
}

Sample augment_unet(const Sample& s, DataRng& rng, const UnetAugmentOptions& o) {
  TS_CHECK(s.image.defined() && s.image.dim() == 3, "augment_unet: the sample needs an image [C, H, W]");
  const int64_t H = s.image.size(1), W = s.image.size(2);
  // Rigid part: rotation about the centre, shift, flips.
  const double angle = rng.uniform(-o.max_rotation_deg, o.max_rotation_deg) * M_PI / 180.0;
  const double ty = rng.uniform(-o.max_shift, o.max_shift), tx = rng.uniform(-o.max_shift, o.max_shift);
  const bool flip_x = o.flips && rng.coin(), flip_y = o.flips && rng.coin();
  // Elastic part: displacements on a coarse grid, bicubically interpolated.
  Tensor coarse = raw::empty({2, o.elastic_grid, o.elastic_grid}, DType::Float64, kCPU);
  for (int64_t i = 0; i < coarse.numel(); ++i) coarse.data<double>()[i] = o.elastic_sigma * rng.normal();
  Tensor field = o.elastic_sigma > 0 ? upsample_displacements(coarse, H, W) : zeros({2, H, W}, kFloat64);
  Tensor source = identity_grid(H, W);
  double* sy = source.data<double>();
  double* sx = sy + H * W;
  const double* dy = field.data<double>();
  const double* dx = dy + H * W;
  const double cy = (H - 1) / 2.0, cx = (W - 1) / 2.0, ca = std::cos(angle), sa = std::sin(angle);
  for (int64_t i = 0; i < H * W; ++i) {
    double y = sy[i] + dy[i] - cy - ty, x = sx[i] + dx[i] - cx - tx;
    const double ry = ca * y - sa * x, rx = sa * y + ca * x;
    y = ry + cy;
    x = rx + cx;
    sy[i] = flip_y ? static_cast<double>(H - 1) - y : y;
    sx[i] = flip_x ? static_cast<double>(W - 1) - x : x;
  }
  Sample r = warp(s, source);
  // Gray values: gain, offset and gamma on the image only.
  const double gain = rng.uniform(1 - o.contrast, 1 + o.contrast), offset = rng.uniform(-o.brightness, o.brightness);
  const double gamma = rng.uniform(1 - o.gamma, 1 + o.gamma);
  float* im = r.image.data<float>();
  for (int64_t i = 0; i < r.image.numel(); ++i) {
    const double v = std::clamp(gain * im[i] + offset, 0.0, 1.0);
    im[i] = static_cast<float>(std::pow(v, gamma));
  }
  return r;
}

Sample hflip(const Sample& s) {
  Sample r = s;
  auto flip_last = [](const Tensor& t) {
    if (!t.defined() || t.numel() == 0) return t;
    const int64_t W = t.size(-1);
    return index_select(t, t.dim() - 1, arange(W - 1.0, -1.0, -1.0, options(kInt64, t.device())));
  };
  r.image = flip_last(s.image);
  r.mask = flip_last(s.mask);
  r.instances = flip_last(s.instances);
  r.weight = flip_last(s.weight);
  r.masks = flip_last(s.masks);
  if (s.boxes.defined() && s.boxes.size(0) > 0) {
    const double W = static_cast<double>(s.image.size(-1));
    Tensor b = s.boxes;
    r.boxes = stack({rsub(b.select(1, 2), W), b.select(1, 1), rsub(b.select(1, 0), W), b.select(1, 3)}, 1);
  }
  return r;
}

}  // namespace tessera
