// COCO run-length encodings and polygon rasterisation (pycocotools semantics, own implementation).
#include "data/coco_mask.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "autograd/ops.h"
#include "core/view.h"

namespace tessera::coco {

Counts rle_from_string(const std::string& s, const std::string& what) {
  // Each count is a little-endian base-32 number in characters '0' + 0..63: 5 value bits, bit 5 =
  // "more follows"; the last chunk's bit 4 is the sign. From the third count on, counts are stored
  // as differences to the count two places before.
  Counts counts;
  std::vector<int64_t> raw;
  size_t p = 0;
  while (p < s.size()) {
    int64_t x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      TS_CHECK(p < s.size(), what, ": truncated compressed RLE string");
      const int c = static_cast<unsigned char>(s[p]) - 48;
      TS_CHECK(c >= 0 && c < 64 && k < 13, what, ": invalid character in compressed RLE string");
      x |= static_cast<int64_t>(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= -(int64_t{1} << (5 * k));  // sign-extend
    }
    if (raw.size() > 2) x += raw[raw.size() - 2];
    TS_CHECK(x >= 0 && x <= 0xffffffffLL, what, ": negative or oversized run in compressed RLE string");
    raw.push_back(x);
  }
  for (int64_t v : raw) counts.push_back(static_cast<uint32_t>(v));
  return counts;
}

std::string rle_to_string(const Counts& counts) {
  std::string s;
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t x = counts[i];
    if (i > 2) x -= counts[i - 2];
    bool more = true;
    while (more) {
      int c = static_cast<int>(x & 0x1f);
      x >>= 5;  // arithmetic shift: keeps the sign
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
    }
  }
  return s;
}

Tensor rle_decode(const Counts& counts, int64_t h, int64_t w, const std::string& what) {
  TS_CHECK(h >= 0 && w >= 0, what, ": negative mask size");
  uint64_t total = 0;
  for (uint32_t c : counts) total += c;
  TS_CHECK(total == static_cast<uint64_t>(h * w), what, ": RLE counts add up to ", total, " pixels, the mask has ", h * w);
  // Runs are column-major: decode into [w, h], then transpose.
  Tensor cm = raw::empty({w, h}, DType::UInt8, kCPU);
  uint8_t* p = cm.data<uint8_t>();
  uint64_t pos = 0;
  uint8_t value = 0;
  for (uint32_t c : counts) {
    std::fill(p + pos, p + pos + c, value);
    pos += c;
    value = static_cast<uint8_t>(1 - value);
  }
  return raw::contiguous(raw::transpose(cm, 0, 1));
}

Counts rle_encode(const Tensor& mask) {
  TS_CHECK(mask.defined() && mask.dim() == 2, "rle_encode: expected a [h, w] mask");
  Tensor cm = raw::contiguous(raw::transpose(raw::to(raw::to(mask, kCPU), DType::Bool), 0, 1));
  const bool* p = cm.data<bool>();
  Counts counts;
  bool value = false;
  uint32_t run = 0;
  const int64_t n = cm.numel();
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] != value) {
      counts.push_back(run);
      run = 0;
      value = p[i];
    }
    ++run;
  }
  counts.push_back(run);
  return counts;
}

int64_t rle_area(const Counts& counts) {
  int64_t a = 0;
  for (size_t i = 1; i < counts.size(); i += 2) a += counts[i];
  return a;
}

Counts polygon_to_rle(const std::vector<double>& xy, int64_t h, int64_t w) {
  TS_CHECK(xy.size() >= 6 && xy.size() % 2 == 0, "polygon: needs at least 3 (x, y) points, got ", xy.size(), " numbers");
  // Points may lie outside the image (annotations often do, by a little), but not beyond one image
  // size: the outline is walked point by point on a 5x finer grid, so its length is the cost.
  for (size_t j = 0; j < xy.size(); ++j) {
    const double extent = static_cast<double>(j % 2 == 0 ? w : h);
    TS_CHECK(std::isfinite(xy[j]) && xy[j] >= -extent && xy[j] <= 2 * extent, "polygon: ", j % 2 == 0 ? "x" : "y", " = ", xy[j],
             " of point ", j / 2, " is more than an image size outside the ", h, "x", w, " image");
  }
  constexpr double kScale = 5.0;
  const size_t k = xy.size() / 2;
  // 1. Vertices on a 5x finer integer grid, closed.
  std::vector<int64_t> x(k + 1), y(k + 1);
  for (size_t j = 0; j < k; ++j) {
    x[j] = static_cast<int64_t>(kScale * xy[2 * j] + 0.5);
    y[j] = static_cast<int64_t>(kScale * xy[2 * j + 1] + 0.5);
  }
  x[k] = x[0];
  y[k] = y[0];
  // 2. Every grid point along each edge, stepping along its longer axis; the edge is walked from
  //    its lower end and the points emitted in the edge's own direction.
  std::vector<int64_t> u, v;
  for (size_t j = 0; j < k; ++j) {
    int64_t xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const int64_t dx = std::llabs(xe - xs), dy = std::llabs(ys - ye);
    const bool along_x = dx >= dy;
    const bool flip = (along_x && xs > xe) || (!along_x && ys > ye);
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    if (along_x) {
      const double slope = dx == 0 ? 0.0 : static_cast<double>(ye - ys) / static_cast<double>(dx);
      for (int64_t d = 0; d <= dx; ++d) {
        const int64_t t = flip ? dx - d : d;
        u.push_back(t + xs);
        v.push_back(static_cast<int64_t>(static_cast<double>(ys) + slope * static_cast<double>(t) + 0.5));
      }
    } else {
      const double slope = static_cast<double>(xe - xs) / static_cast<double>(dy);
      for (int64_t d = 0; d <= dy; ++d) {
        const int64_t t = flip ? dy - d : d;
        v.push_back(t + ys);
        u.push_back(static_cast<int64_t>(static_cast<double>(xs) + slope * static_cast<double>(t) + 0.5));
      }
    }
  }
  // 3. Where the walk crosses from one fine column to the next, a boundary on the pixel grid: keep
  //    the crossings that land on a pixel column centre, as (column, first row inside).
  std::vector<uint64_t> a;
  for (size_t j = 1; j < u.size(); ++j) {
    if (u[j] == u[j - 1]) continue;
    double xd = static_cast<double>(u[j] < u[j - 1] ? u[j] : u[j] - 1);
    xd = (xd + 0.5) / kScale - 0.5;
    if (std::floor(xd) != xd || xd < 0 || xd > static_cast<double>(w - 1)) continue;
    double yd = static_cast<double>(v[j] < v[j - 1] ? v[j] : v[j - 1]);
    yd = (yd + 0.5) / kScale - 0.5;
    yd = std::ceil(std::clamp(yd, 0.0, static_cast<double>(h)));
    a.push_back(static_cast<uint64_t>(xd) * static_cast<uint64_t>(h) + static_cast<uint64_t>(yd));
  }
  // 4. The sorted boundary positions alternate outside/inside: their gaps are the runs. Zero-length
  //    runs (two boundaries at one position) merge their neighbours.
  a.push_back(static_cast<uint64_t>(h * w));
  std::sort(a.begin(), a.end());
  uint64_t prev = 0;
  for (uint64_t& p : a) {
    const uint64_t t = p;
    p -= prev;
    prev = t;
  }
  Counts counts;
  size_t j = 0;
  counts.push_back(static_cast<uint32_t>(a[j++]));
  while (j < a.size()) {
    if (a[j] > 0) {
      counts.push_back(static_cast<uint32_t>(a[j++]));
    } else {
      ++j;
      if (j < a.size()) counts.back() += static_cast<uint32_t>(a[j++]);
    }
  }
  return counts;
}

namespace {
// Walks two masks of one size run by run: f(length, a's value, b's value) for each stretch where
// neither changes (pycocotools' rleMerge walk).
template <class F>
void walk_runs(const Counts& a, const Counts& b, F&& f) {
  size_t i = 0, j = 0;
  uint64_t ca = a.empty() ? 0 : a[0], cb = b.empty() ? 0 : b[0];
  bool va = false, vb = false;
  while (i < a.size() && j < b.size()) {
    const uint64_t step = std::min(ca, cb);
    f(step, va, vb);
    ca -= step;
    cb -= step;
    while (ca == 0 && ++i < a.size()) {
      ca = a[i];
      va = !va;
    }
    while (cb == 0 && ++j < b.size()) {
      cb = b[j];
      vb = !vb;
    }
  }
}
}  // namespace

Counts rle_union(const Counts& a, const Counts& b) {
  Counts out{0};
  bool out_value = false;
  walk_runs(a, b, [&](uint64_t length, bool va, bool vb) {
    if (length == 0) return;
    if ((va || vb) != out_value) {
      out.push_back(0);
      out_value = va || vb;
    }
    out.back() += static_cast<uint32_t>(length);
  });
  return out;
}

uint64_t rle_intersection(const Counts& a, const Counts& b) {
  uint64_t inter = 0;
  walk_runs(a, b, [&](uint64_t length, bool va, bool vb) { inter += va && vb ? length : 0; });
  return inter;
}

Counts polygons_to_rle(const std::vector<std::vector<double>>& polygons, int64_t h, int64_t w) {
  TS_CHECK(!polygons.empty(), "polygons_to_rle: no polygon");
  Counts merged = polygon_to_rle(polygons[0], h, w);
  for (size_t k = 1; k < polygons.size(); ++k) merged = rle_union(merged, polygon_to_rle(polygons[k], h, w));
  return merged;
}

Tensor polygons_to_mask(const std::vector<std::vector<double>>& polygons, int64_t h, int64_t w) {
  Tensor m = zeros({h, w}, DType::UInt8);
  uint8_t* mp = m.data<uint8_t>();
  for (const auto& poly : polygons) {
    Tensor one = rle_decode(polygon_to_rle(poly, h, w), h, w, "polygon");
    const uint8_t* op = one.data<uint8_t>();
    for (int64_t i = 0; i < h * w; ++i) mp[i] |= op[i];
  }
  return m;
}

}  // namespace tessera::coco
