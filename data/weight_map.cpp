// Exact Euclidean distance transform and the U-Net weight map.
#include "data/weight_map.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "core/parallel.h"
#include "core/view.h"

namespace tessera {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// 1-D squared distance transform of f (Felzenszwalb & Huttenlocher 2012): the lower envelope of the
// parabolas (q - p)^2 + f(p).
void dt1d(const double* f, double* d, int64_t n, std::vector<int64_t>& v, std::vector<double>& z) {
  v.assign(static_cast<size_t>(n), 0);
  z.assign(static_cast<size_t>(n) + 1, 0.0);
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    if (f[q] == kInf) continue;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -kInf;
      z[1] = kInf;
      continue;
    }
    double s;
    while (true) {
      const int64_t p = v[k];
      s = ((f[q] + static_cast<double>(q * q)) - (f[p] + static_cast<double>(p * p))) / (2.0 * static_cast<double>(q - p));
      if (s > z[k] || k == 0) break;
      --k;
    }
    if (s <= z[k]) {  // k == 0 and the new parabola dominates everywhere
      v[0] = q;
      z[0] = -kInf;
      z[1] = kInf;
      continue;
    }
    ++k;
    v[k] = q;
    z[k] = s;
    z[k + 1] = kInf;
  }
  if (k < 0) {
    std::fill(d, d + n, kInf);
    return;
  }
  int64_t j = 0;
  for (int64_t q = 0; q < n; ++q) {
    while (z[j + 1] < static_cast<double>(q)) ++j;
    const double diff = static_cast<double>(q - v[j]);
    d[q] = diff * diff + f[v[j]];
  }
}

// In place on an [H, W] field of 0 (inside) / inf (outside): columns, then rows.
void dt2d(std::vector<double>& g, int64_t H, int64_t W) {
  std::vector<double> f(static_cast<size_t>(std::max(H, W))), d(f.size());
  std::vector<int64_t> v;
  std::vector<double> z;
  for (int64_t x = 0; x < W; ++x) {
    for (int64_t y = 0; y < H; ++y) f[y] = g[y * W + x];
    dt1d(f.data(), d.data(), H, v, z);
    for (int64_t y = 0; y < H; ++y) g[y * W + x] = d[y];
  }
  for (int64_t y = 0; y < H; ++y) {
    dt1d(g.data() + y * W, d.data(), W, v, z);
    std::copy(d.begin(), d.begin() + W, g.begin() + y * W);
  }
}

}  // namespace

Tensor squared_distance_transform(const Tensor& inside_in) {
  TS_CHECK(inside_in.defined() && inside_in.dim() == 2, "distance_transform: expected an [H, W] mask");
  Tensor inside = raw::contiguous(raw::to(raw::to(inside_in, kCPU), DType::Bool));
  const int64_t H = inside.size(0), W = inside.size(1);
  std::vector<double> g(static_cast<size_t>(H * W));
  const bool* p = inside.data<bool>();
  for (int64_t i = 0; i < H * W; ++i) g[i] = p[i] ? 0.0 : kInf;
  dt2d(g, H, W);
  Tensor out = raw::empty({H, W}, DType::Float64, kCPU);
  std::copy(g.begin(), g.end(), out.data<double>());
  return out;
}

Tensor unet_weight_map(const Tensor& mask_in, const Tensor& instances_in, int64_t num_classes, double w0, double sigma) {
  TS_CHECK(mask_in.defined() && instances_in.defined() && mask_in.dim() == 2 && mask_in.shape() == instances_in.shape(),
           "unet_weight_map: mask and instances must be [H, W] of one shape");
  TS_CHECK(num_classes >= 1 && sigma > 0 && w0 >= 0, "unet_weight_map: need num_classes >= 1, sigma > 0, w0 >= 0");
  Tensor mask = raw::contiguous(raw::to(raw::to(mask_in, kCPU), DType::Int64));
  Tensor inst = raw::contiguous(raw::to(raw::to(instances_in, kCPU), DType::Int64));
  const int64_t H = mask.size(0), W = mask.size(1), N = H * W;
  const int64_t* m = mask.data<int64_t>();
  const int64_t* id = inst.data<int64_t>();
  // Class balance.
  std::vector<int64_t> count(static_cast<size_t>(num_classes), 0);
  for (int64_t i = 0; i < N; ++i) {
    TS_CHECK(m[i] >= 0 && m[i] < num_classes, "unet_weight_map: mask value ", m[i], " outside [0, ", num_classes, ")");
    ++count[static_cast<size_t>(m[i])];
  }
  std::vector<double> wc(static_cast<size_t>(num_classes), 0.0);
  for (int64_t k = 0; k < num_classes; ++k)
    if (count[k] > 0) wc[k] = static_cast<double>(N) / (static_cast<double>(num_classes) * static_cast<double>(count[k]));
  // Distances to the nearest and second nearest cell: one transform per cell, folded into two
  // running minima per thread, then the threads' minima merged.
  int64_t max_id = 0;
  for (int64_t i = 0; i < N; ++i) max_id = std::max(max_id, id[i]);
  auto keep_two = [](double d, double& a, double& b) {
    if (d < a) {
      b = a;
      a = d;
    } else if (d < b) {
      b = d;
    }
  };
  std::vector<std::vector<double>> part1, part2;
  std::mutex mu;
  parallel_chunks(max_id, 1, [&](int64_t c0, int64_t c1) {
    std::vector<double> a(static_cast<size_t>(N), kInf), b(static_cast<size_t>(N), kInf), g(static_cast<size_t>(N));
    for (int64_t c = c0; c < c1; ++c) {
      bool any = false;
      for (int64_t i = 0; i < N; ++i) {
        g[i] = id[i] == c + 1 ? 0.0 : kInf;
        any = any || id[i] == c + 1;
      }
      if (!any) continue;
      dt2d(g, H, W);
      for (int64_t i = 0; i < N; ++i) keep_two(std::sqrt(g[i]), a[i], b[i]);
    }
    std::lock_guard<std::mutex> lock(mu);
    part1.push_back(std::move(a));
    part2.push_back(std::move(b));
  });
  std::vector<double> d1(static_cast<size_t>(N), kInf), d2(static_cast<size_t>(N), kInf);
  for (size_t t = 0; t < part1.size(); ++t)
    for (int64_t i = 0; i < N; ++i) {
      keep_two(part1[t][i], d1[i], d2[i]);
      keep_two(part2[t][i], d1[i], d2[i]);
    }
  Tensor out = raw::empty({H, W}, DType::Float32, kCPU);
  float* o = out.data<float>();
  for (int64_t i = 0; i < N; ++i) {
    double w = wc[static_cast<size_t>(m[i])];
    if (m[i] == 0 && d2[i] < kInf) w += w0 * std::exp(-(d1[i] + d2[i]) * (d1[i] + d2[i]) / (2 * sigma * sigma));
    o[i] = static_cast<float>(w);
  }
  return out;
}

}  // namespace tessera
