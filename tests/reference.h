// Naive float64 references for the op tests: plain loops over test::Host, written independently
// of the kernels (no strides, no tiling, no shared code with the library beyond Shape).
#pragma once

#include <algorithm>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>

#include "test_helpers.h"

namespace tessera::test::ref {

inline Shape broadcast(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i + a.size() < n ? 1 : a[i + a.size() - n];
    const int64_t db = i + b.size() < n ? 1 : b[i + b.size() - n];
    out[i] = std::max(da, db);
  }
  return out;
}

// The index into a tensor of `shape` that broadcasting maps output index `idx` to.
inline Shape project(const Shape& idx, const Shape& shape) {
  Shape r(shape.size());
  const size_t off = idx.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d) r[d] = shape[d] == 1 ? 0 : idx[d + off];
  return r;
}

inline Host map(const Host& x, const std::function<double(double)>& f) {
  Host r{x.shape, x.v};
  for (double& v : r.v) v = f(v);
  return r;
}

inline Host zip(const Host& a, const Host& b, const std::function<double(double, double)>& f) {
  Host r = host_zeros(broadcast(a.shape, b.shape));
  for (int64_t i = 0; i < r.numel(); ++i) {
    const Shape idx = unravel(i, r.shape);
    r.v[i] = f(a.at(project(idx, a.shape)), b.at(project(idx, b.shape)));
  }
  return r;
}

inline Host where(const Host& c, const Host& a, const Host& b) {
  Host r = host_zeros(broadcast(c.shape, broadcast(a.shape, b.shape)));
  for (int64_t i = 0; i < r.numel(); ++i) {
    const Shape idx = unravel(i, r.shape);
    r.v[i] = c.at(project(idx, c.shape)) != 0 ? a.at(project(idx, a.shape)) : b.at(project(idx, b.shape));
  }
  return r;
}

// Folds every element into its output position (dims reduced; all when empty).
inline Host reduce(const Host& x, Shape dims, bool keepdim, double init,
                   const std::function<double(double acc, double v, int64_t pos)>& step) {
  if (dims.empty())
    for (int64_t d = 0; d < static_cast<int64_t>(x.shape.size()); ++d) dims.push_back(d);
  for (int64_t& d : dims)
    if (d < 0) d += static_cast<int64_t>(x.shape.size());
  auto reduced = [&](int64_t d) { return std::find(dims.begin(), dims.end(), d) != dims.end(); };
  Shape kept_shape;
  for (int64_t d = 0; d < static_cast<int64_t>(x.shape.size()); ++d) kept_shape.push_back(reduced(d) ? 1 : x.shape[d]);
  Host r = host_zeros(kept_shape);
  std::fill(r.v.begin(), r.v.end(), init);
  std::vector<int64_t> seen(r.v.size(), 0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    Shape idx = unravel(i, x.shape);
    for (int64_t d = 0; d < static_cast<int64_t>(idx.size()); ++d)
      if (reduced(d)) idx[d] = 0;
    const int64_t o = r.offset(idx);
    r.v[o] = step(r.v[o], x.v[i], seen[o]++);
  }
  if (!keepdim) {
    Shape s;
    for (int64_t d = 0; d < static_cast<int64_t>(x.shape.size()); ++d)
      if (!reduced(d)) s.push_back(x.shape[d]);
    r.shape = s;
  }
  return r;
}

inline Host sum(const Host& x, const Shape& dims, bool keepdim) {
  return reduce(x, dims, keepdim, 0.0, [](double a, double v, int64_t) { return a + v; });
}

inline Host mean(const Host& x, const Shape& dims, bool keepdim) {
  Host s = sum(x, dims, keepdim);
  const double n = static_cast<double>(x.numel()) / static_cast<double>(std::max<int64_t>(s.numel(), 1));
  for (double& v : s.v) v /= n;
  return s;
}

inline Host amax(const Host& x, const Shape& dims, bool keepdim, bool is_max) {
  return reduce(x, dims, keepdim, is_max ? -INFINITY : INFINITY, [is_max](double a, double v, int64_t) {
    if (std::isnan(a) || std::isnan(v)) return std::numeric_limits<double>::quiet_NaN();
    return is_max ? std::max(a, v) : std::min(a, v);
  });
}

// Position of the first maximum (minimum) along `dim` (all dims: flat index).
inline Host argext(const Host& x, std::optional<int64_t> dim, bool keepdim, bool is_max) {
  if (!dim) {
    int64_t best = 0;
    for (int64_t i = 1; i < x.numel(); ++i)
      if (is_max ? x.v[i] > x.v[best] : x.v[i] < x.v[best]) best = i;
    return Host{{}, {static_cast<double>(best)}};
  }
  const int64_t d0 = *dim < 0 ? *dim + static_cast<int64_t>(x.shape.size()) : *dim;
  Shape out_shape = x.shape;
  out_shape[d0] = 1;
  Host r = host_zeros(out_shape);
  for (int64_t o = 0; o < r.numel(); ++o) {
    Shape idx = unravel(o, out_shape);
    int64_t best = 0;
    for (int64_t k = 0; k < x.shape[d0]; ++k) {
      Shape a = idx, b = idx;
      a[d0] = k;
      b[d0] = best;
      if (is_max ? x.at(a) > x.at(b) : x.at(a) < x.at(b)) best = k;
    }
    r.v[o] = static_cast<double>(best);
  }
  if (!keepdim) r.shape.erase(r.shape.begin() + d0);
  return r;
}

inline Host var(const Host& x, const Shape& dims, int64_t correction, bool keepdim) {
  Host m = mean(x, dims, true);
  Host sq = zip(x, m, [](double a, double b) { return (a - b) * (a - b); });
  Host s = sum(sq, dims, keepdim);
  const double n = static_cast<double>(x.numel()) / static_cast<double>(std::max<int64_t>(s.numel(), 1));
  for (double& v : s.v) v /= (n - static_cast<double>(correction));
  return s;
}

// torch.matmul for >= 2-D operands (batch dims broadcast).
inline Host matmul(const Host& a, const Host& b) {
  const int64_t M = a.shape[a.shape.size() - 2], K = a.shape.back(), N = b.shape.back();
  const Shape ba(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  const Shape batch = broadcast(ba, bb);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Host r = host_zeros(out_shape);
  for (int64_t i = 0; i < r.numel(); ++i) {
    const Shape idx = unravel(i, out_shape);
    const Shape bidx(idx.begin(), idx.end() - 2);
    Shape ia = project(bidx, ba), ib = project(bidx, bb);
    ia.push_back(idx[idx.size() - 2]);
    ia.push_back(0);
    ib.push_back(0);
    ib.push_back(idx.back());
    double acc = 0;
    for (int64_t k = 0; k < K; ++k) {
      ia.back() = k;
      ib[ib.size() - 2] = k;
      acc += a.at(ia) * b.at(ib);
    }
    r.v[i] = acc;
  }
  return r;
}

inline Host softmax(const Host& x, int64_t dim, bool log) {
  const int64_t d0 = dim < 0 ? dim + static_cast<int64_t>(x.shape.size()) : dim;
  Host r = x;
  Shape line_shape = x.shape;
  line_shape[d0] = 1;
  for (int64_t o = 0; o < shape_numel(line_shape); ++o) {
    Shape idx = unravel(o, line_shape);
    double mx = -INFINITY, s = 0;
    for (int64_t k = 0; k < x.shape[d0]; ++k) {
      idx[d0] = k;
      mx = std::max(mx, x.at(idx));
    }
    for (int64_t k = 0; k < x.shape[d0]; ++k) {
      idx[d0] = k;
      s += std::exp(x.at(idx) - mx);
    }
    for (int64_t k = 0; k < x.shape[d0]; ++k) {
      idx[d0] = k;
      r.at(idx) = log ? x.at(idx) - mx - std::log(s) : std::exp(x.at(idx) - mx) / s;
    }
  }
  return r;
}

// Applies f to every line along `dim`: f(values) -> new values of the same length.
inline Host along(const Host& x, int64_t dim, const std::function<std::vector<double>(const std::vector<double>&)>& f,
                  int64_t out_len = -1) {
  const int64_t d0 = dim < 0 ? dim + static_cast<int64_t>(x.shape.size()) : dim;
  Shape out_shape = x.shape;
  if (out_len >= 0) out_shape[d0] = out_len;
  Host r = host_zeros(out_shape);
  Shape line_shape = x.shape;
  line_shape[d0] = 1;
  for (int64_t o = 0; o < shape_numel(line_shape); ++o) {
    Shape idx = unravel(o, line_shape);
    std::vector<double> line;
    for (int64_t k = 0; k < x.shape[d0]; ++k) {
      idx[d0] = k;
      line.push_back(x.at(idx));
    }
    std::vector<double> res = f(line);
    for (int64_t k = 0; k < out_shape[d0]; ++k) {
      idx[d0] = k;
      r.at(idx) = res[static_cast<size_t>(k)];
    }
  }
  return r;
}

// Stable sort order of a line, NaN largest.
inline std::vector<int64_t> sort_order(const std::vector<double>& v, bool descending) {
  std::vector<int64_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  auto less = [&](int64_t a, int64_t b) {
    if (std::isnan(v[a])) return false;
    if (std::isnan(v[b])) return true;
    return v[a] < v[b];
  };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return descending ? less(b, a) : less(a, b); });
  return order;
}

inline Host cat(const std::vector<Host>& xs, int64_t dim) {
  Shape out_shape = xs[0].shape;
  out_shape[dim] = 0;
  for (const Host& x : xs) out_shape[dim] += x.shape[dim];
  Host r = host_zeros(out_shape);
  int64_t offset = 0;
  for (const Host& x : xs) {
    for (int64_t i = 0; i < x.numel(); ++i) {
      Shape idx = unravel(i, x.shape);
      idx[dim] += offset;
      r.at(idx) = x.v[i];
    }
    offset += x.shape[dim];
  }
  return r;
}

}  // namespace tessera::test::ref
