// Synthetic shapes and touching cells.
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "data/rng.h"

namespace tessera {

// ---------------------------------------------------------------------------------------------
// Shapes

SyntheticShapes::SyntheticShapes(int64_t count, uint64_t seed, int64_t height, int64_t width)
    : count_(count), seed_(seed), h_(height), w_(width) {
  TS_CHECK(count > 0 && height >= 64 && width >= 64, "SyntheticShapes: need count > 0 and images of at least 64x64");
}

const char* SyntheticShapes::class_name(int64_t label) {
  static const char* names[] = {"background", "square", "circle", "triangle"};
  return label >= 0 && label <= 3 ? names[label] : "?";
}

namespace {

struct Shape2D {
  int64_t label;
  double x, y, s;
  float r, g, b;
  bool contains(double px, double py) const {
    switch (label) {
      case 1: return std::fabs(px - x) <= s && std::fabs(py - y) <= s;
      case 2: return (px - x) * (px - x) + (py - y) * (py - y) <= s * s;
      default: {  // triangle with apex up: (x, y - s), (x -+ s / sin 60, y + s)
        const double half = s / std::sin(M_PI / 3);
        if (py < y - s || py > y + s) return false;
        const double t = (py - (y - s)) / (2 * s);  // 0 at the apex, 1 at the base
        return std::fabs(px - x) <= t * half;
      }
    }
  }
};

}  // namespace

Sample SyntheticShapes::get(int64_t index) const {
  TS_CHECK(index >= 0 && index < count_, "SyntheticShapes: index ", index, " out of range [0, ", count_, ")");
  DataRng rng(seed_, static_cast<uint64_t>(index));
  const float bg[3] = {static_cast<float>(rng.uniform()), static_cast<float>(rng.uniform()), static_cast<float>(rng.uniform())};
  // The classic sample's placement (scaled from its 128-px images): 1..4 shapes, half-size s in
  // [buffer, side / 4] with buffer = side * 20 / 128, centres at least `buffer` from the edges, and a
  // shape whose box overlaps an earlier kept one with IoU > 0.3 is dropped (its non-max suppression).
  const int64_t n = rng.randint(1, 5);
  const double side = static_cast<double>(std::min(h_, w_)), buffer = side * 20.0 / 128.0;
  std::vector<Shape2D> shapes;
  auto iou = [](const Shape2D& a, const Shape2D& b) {
    const double ix = std::max(0.0, std::min(a.x + a.s, b.x + b.s) - std::max(a.x - a.s, b.x - b.s));
    const double iy = std::max(0.0, std::min(a.y + a.s, b.y + b.s) - std::max(a.y - a.s, b.y - b.s));
    const double inter = ix * iy, uni = 4 * a.s * a.s + 4 * b.s * b.s - inter;
    return inter / uni;
  };
  for (int64_t i = 0; i < n; ++i) {
    Shape2D s{};
    s.label = rng.randint(1, 4);
    s.y = rng.uniform(buffer, static_cast<double>(h_) - buffer);
    s.x = rng.uniform(buffer, static_cast<double>(w_) - buffer);
    s.s = rng.uniform(buffer, side / 4.0);
    s.r = static_cast<float>(rng.uniform());
    s.g = static_cast<float>(rng.uniform());
    s.b = static_cast<float>(rng.uniform());
    bool keep = true;
    for (const Shape2D& k : shapes) keep = keep && iou(k, s) <= 0.3;
    if (keep) shapes.push_back(s);
  }
  // Paint in order; the owner of each pixel is the last shape that covers it.
  Tensor image = empty({3, h_, w_});
  std::vector<int64_t> owner(static_cast<size_t>(h_ * w_), -1);
  float* im = image.data<float>();
  for (int64_t y = 0; y < h_; ++y)
    for (int64_t x = 0; x < w_; ++x) {
      const int64_t p = y * w_ + x;
      float c[3] = {bg[0], bg[1], bg[2]};
      for (size_t i = 0; i < shapes.size(); ++i)
        if (shapes[i].contains(x + 0.5, y + 0.5)) {
          owner[p] = static_cast<int64_t>(i);
          c[0] = shapes[i].r;
          c[1] = shapes[i].g;
          c[2] = shapes[i].b;
        }
      for (int k = 0; k < 3; ++k) im[k * h_ * w_ + p] = c[k];
    }
  std::vector<float> boxes;
  std::vector<int64_t> labels;
  std::vector<Tensor> masks;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor m = zeros({h_, w_}, kUInt8);
    uint8_t* mp = m.data<uint8_t>();
    int64_t x1 = w_, y1 = h_, x2 = -1, y2 = -1;
    for (int64_t p = 0; p < h_ * w_; ++p)
      if (owner[p] == static_cast<int64_t>(i)) {
        mp[p] = 1;
        x1 = std::min(x1, p % w_);
        x2 = std::max(x2, p % w_);
        y1 = std::min(y1, p / w_);
        y2 = std::max(y2, p / w_);
      }
    if (x2 < 0 || x2 - x1 < 2 || y2 - y1 < 2) continue;  // hidden or nearly hidden behind later shapes
    boxes.insert(boxes.end(), {static_cast<float>(x1), static_cast<float>(y1), static_cast<float>(x2 + 1), static_cast<float>(y2 + 1)});
    labels.push_back(shapes[i].label);
    masks.push_back(m);
  }
  Sample s;
  s.image = image;
  const int64_t k = static_cast<int64_t>(labels.size());
  s.boxes = k ? from_vector<float>(boxes, {k, 4}) : zeros({0, 4});
  s.labels = from_vector<int64_t>(labels, {k});
  s.masks = k ? stack(masks, 0) : zeros({0, h_, w_}, kUInt8);
  s.iscrowd = zeros({k}, kInt64);
  s.image_id = index;
  s.name = describe(index);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Cells

SyntheticCells::SyntheticCells(int64_t count, uint64_t seed, int64_t height, int64_t width)
    : count_(count), seed_(seed), h_(height), w_(width) {
  TS_CHECK(count > 0 && height >= 64 && width >= 64, "SyntheticCells: need count > 0 and images of at least 64x64");
}

namespace {

struct Cell {
  double x, y, radius;
  double a[3], phase[3];  // radius(theta) = R (1 + sum a_k cos(k theta + phase_k))
  float brightness;
  double radius_at(double theta) const {
    double r = 1.0;
    for (int k = 0; k < 3; ++k) r += a[k] * std::cos((k + 1) * theta + phase[k]);
    return radius * r;
  }
};

}  // namespace

Sample SyntheticCells::get(int64_t index) const {
  TS_CHECK(index >= 0 && index < count_, "SyntheticCells: index ", index, " out of range [0, ", count_, ")");
  DataRng rng(seed_, static_cast<uint64_t>(index), 1);
  const double scale = std::min(h_, w_) / 256.0;
  // Cell centres by rejection: close enough that many cells touch, not so close that they merge.
  std::vector<Cell> cells;
  const int64_t target = rng.randint(14, 26);
  for (int attempt = 0; attempt < 2000 && static_cast<int64_t>(cells.size()) < target; ++attempt) {
    Cell c{};
    c.radius = rng.uniform(14.0, 22.0) * scale;
    c.x = rng.uniform(-0.3 * c.radius, static_cast<double>(w_) + 0.3 * c.radius);
    c.y = rng.uniform(-0.3 * c.radius, static_cast<double>(h_) + 0.3 * c.radius);
    bool ok = true;
    for (const Cell& o : cells) {
      const double d = std::hypot(c.x - o.x, c.y - o.y);
      if (d < 1.25 * std::max(c.radius, o.radius)) ok = false;
    }
    if (!ok) continue;
    for (int k = 0; k < 3; ++k) {
      c.a[k] = rng.uniform(0.0, k == 0 ? 0.12 : 0.07);
      c.phase[k] = rng.uniform(0.0, 2 * M_PI);
    }
    c.brightness = static_cast<float>(rng.uniform(0.5, 0.75));
    cells.push_back(c);
  }
  // Each pixel: the cell it is deepest inside (smallest distance / radius(angle)), if any.
  Tensor instances = zeros({h_, w_}, kInt64);
  int64_t* inst = instances.data<int64_t>();
  for (int64_t y = 0; y < h_; ++y)
    for (int64_t x = 0; x < w_; ++x) {
      double best = 1.0;
      int64_t id = 0;
      for (size_t i = 0; i < cells.size(); ++i) {
        const double dx = x + 0.5 - cells[i].x, dy = y + 0.5 - cells[i].y;
        const double rel = std::hypot(dx, dy) / cells[i].radius_at(std::atan2(dy, dx));
        if (rel < best) {
          best = rel;
          id = static_cast<int64_t>(i) + 1;
        }
      }
      inst[y * w_ + x] = id;
    }
  // Semantic mask: cells minus the pixels where two different cells touch (8-neighbourhood).
  Tensor mask = zeros({h_, w_}, kInt64);
  int64_t* m = mask.data<int64_t>();
  for (int64_t y = 0; y < h_; ++y)
    for (int64_t x = 0; x < w_; ++x) {
      const int64_t id = inst[y * w_ + x];
      if (id == 0) continue;
      bool border = false;
      for (int64_t dy = -1; dy <= 1 && !border; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= h_ || xx < 0 || xx >= w_) continue;
          const int64_t o = inst[yy * w_ + xx];
          if (o != 0 && o != id) border = true;
        }
      m[y * w_ + x] = border ? 0 : 1;
    }
  // Microscopy-like image: dim noisy background, bright textured cells with a brighter rim, a
  // darker line where cells touch, then a light blur and noise.
  std::vector<float> raw(static_cast<size_t>(h_ * w_));
  for (int64_t y = 0; y < h_; ++y)
    for (int64_t x = 0; x < w_; ++x) {
      const int64_t p = y * w_ + x;
      const int64_t id = inst[p];
      float v = 0.15f;
      if (id > 0) {
        const Cell& c = cells[static_cast<size_t>(id - 1)];
        const double dx = x + 0.5 - c.x, dy = y + 0.5 - c.y;
        const double rel = std::hypot(dx, dy) / c.radius_at(std::atan2(dy, dx));
        v = c.brightness + static_cast<float>(0.12 * std::max(0.0, rel - 0.75) / 0.25);
        v += static_cast<float>(0.04 * std::sin(0.5 * x + 0.3 * y + id));  // texture
        if (m[p] == 0) v = 0.3f;                                          // the touching border
      }
      raw[static_cast<size_t>(p)] = v;
    }
  Tensor image = empty({1, h_, w_});
  float* im = image.data<float>();
  for (int64_t y = 0; y < h_; ++y)
    for (int64_t x = 0; x < w_; ++x) {
      float acc = 0;
      int n = 0;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t yy = std::clamp<int64_t>(y + dy, 0, h_ - 1), xx = std::clamp<int64_t>(x + dx, 0, w_ - 1);
          acc += raw[static_cast<size_t>(yy * w_ + xx)];
          ++n;
        }
      const float noisy = acc / static_cast<float>(n) + static_cast<float>(0.05 * rng.normal());
      im[y * w_ + x] = std::clamp(noisy, 0.0f, 1.0f);
    }
  Sample s;
  s.image = image;
  s.mask = mask;
  s.instances = instances;
  s.image_id = index;
  s.name = describe(index);
  return s;
}

}  // namespace tessera
