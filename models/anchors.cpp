// AnchorGenerator.
#include "models/anchors.h"

#include <cmath>

namespace tessera {

AnchorGenerator::AnchorGenerator(std::vector<std::vector<double>> sizes, std::vector<std::vector<double>> aspect_ratios)
    : sizes_(std::move(sizes)), ratios_(std::move(aspect_ratios)) {
  TS_CHECK(!sizes_.empty() && sizes_.size() == ratios_.size(), "AnchorGenerator: need one list of sizes and one of aspect ",
           "ratios per level, got ", sizes_.size(), " and ", ratios_.size());
  for (size_t l = 0; l < sizes_.size(); ++l) {
    TS_CHECK(!sizes_[l].empty() && !ratios_[l].empty(), "AnchorGenerator: level ", l, " has no sizes or no aspect ratios");
    for (double r : ratios_[l]) TS_CHECK(r > 0, "AnchorGenerator: aspect ratios must be positive, got ", r);
    for (double s : sizes_[l]) TS_CHECK(s > 0, "AnchorGenerator: sizes must be positive, got ", s);
  }
}

AnchorGenerator AnchorGenerator::fpn_default() {
  return AnchorGenerator({{32}, {64}, {128}, {256}, {512}}, std::vector<std::vector<double>>(5, {0.5, 1.0, 2.0}));
}

int64_t AnchorGenerator::anchors_per_location(size_t level) const {
  return static_cast<int64_t>(sizes_.at(level).size() * ratios_.at(level).size());
}

Tensor AnchorGenerator::cell_anchors(size_t level) const {
  // torchvision computes these in the features' dtype (float32): h_ratio = sqrt(r), w_ratio =
  // 1 / h_ratio, ws = w_ratio * size, and (-ws, -hs, ws, hs) / 2, rounded half to even.
  std::vector<float> v;
  for (double r : ratios_.at(level)) {
    const float h_ratio = std::sqrt(static_cast<float>(r)), w_ratio = 1.0f / h_ratio;
    for (double s : sizes_.at(level)) {
      const float ws = w_ratio * static_cast<float>(s), hs = h_ratio * static_cast<float>(s);
      for (float c : {-ws, -hs, ws, hs}) v.push_back(std::nearbyint(c / 2.0f));
    }
  }
  return from_vector(v, {static_cast<int64_t>(v.size() / 4), 4});
}

std::vector<int64_t> AnchorGenerator::anchors_per_level(const std::vector<Tensor>& features) const {
  TS_CHECK(features.size() == sizes_.size(), "AnchorGenerator: ", sizes_.size(), " levels configured, got ", features.size(),
           " feature maps");
  std::vector<int64_t> n;
  for (size_t l = 0; l < features.size(); ++l) n.push_back(features[l].size(-2) * features[l].size(-1) * anchors_per_location(l));
  return n;
}

Tensor AnchorGenerator::anchors(const std::vector<Tensor>& features, Int2 image_size) const {
  anchors_per_level(features);  // checks the level count
  std::vector<Tensor> all;
  for (size_t l = 0; l < features.size(); ++l) {
    const int64_t gh = features[l].size(-2), gw = features[l].size(-1);
    TS_CHECK(gh > 0 && gw > 0, "AnchorGenerator: feature map ", l, " is empty");
    const int64_t sh = image_size.h / gh, sw = image_size.w / gw;
    const Tensor cell = cell_anchors(l);
    const std::vector<float> c = cell.to_vector<float>();
    const int64_t A = cell.size(0);
    std::vector<float> v(static_cast<size_t>(gh * gw * A * 4));
    size_t k = 0;
    for (int64_t y = 0; y < gh; ++y)
      for (int64_t x = 0; x < gw; ++x) {
        const float sx = static_cast<float>(x * sw), sy = static_cast<float>(y * sh);
        for (int64_t a = 0; a < A; ++a) {
          v[k++] = sx + c[a * 4 + 0];
          v[k++] = sy + c[a * 4 + 1];
          v[k++] = sx + c[a * 4 + 2];
          v[k++] = sy + c[a * 4 + 3];
        }
      }
    all.push_back(from_vector(v, {gh * gw * A, 4}, features[l].device()));
  }
  return cat(all);
}

}  // namespace tessera
