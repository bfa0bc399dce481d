// Synthetic datasets, deterministic from (seed, index), so that the main jobs run with no download.
//   SyntheticShapes: the classic Mask R-CNN "shapes" sample — squares, circles and triangles of
//     random colour, size and position on a flat random background (its placement rules: 1..4
//     shapes of half-size side*20/128..side/4, a shape overlapping an earlier one with box IoU > 0.3
//     is dropped), with instance masks (later shapes occlude earlier ones; fully hidden shapes are
//     dropped) and tight boxes. Labels: 1 square, 2 circle, 3 triangle.
//   SyntheticCells: touching cells for U-Net — irregular blobs that often touch; each pixel goes to
//     the cell whose (angle-dependent) radius it is deepest inside, so touching cells share a
//     boundary. The semantic mask is 1 on cells except a thin border where two cells touch (the
//     separation U-Net must learn), 0 elsewhere; instances hold the cell ids.
#pragma once

#include "data/dataset.h"

namespace tessera {

class SyntheticShapes : public Dataset {
 public:
  SyntheticShapes(int64_t count, uint64_t seed, int64_t height = 128, int64_t width = 128);
  int64_t size() const override { return count_; }
  Sample get(int64_t index) const override;
  std::string describe(int64_t index) const override { return "synthetic shapes #" + std::to_string(index); }
  static constexpr int64_t kNumClasses = 3;
  static const char* class_name(int64_t label);

 private:
  int64_t count_;
  uint64_t seed_;
  int64_t h_, w_;
};

class SyntheticCells : public Dataset {
 public:
  SyntheticCells(int64_t count, uint64_t seed, int64_t height = 256, int64_t width = 256);
  int64_t size() const override { return count_; }
  Sample get(int64_t index) const override;
  std::string describe(int64_t index) const override { return "synthetic cells #" + std::to_string(index); }

 private:
  int64_t count_;
  uint64_t seed_;
  int64_t h_, w_;
};

}  // namespace tessera
