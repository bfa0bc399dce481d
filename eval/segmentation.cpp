// Segmentation metrics.
#include "eval/segmentation.h"

#include <cmath>
#include <limits>
#include <map>
#include <unordered_map>

#include "core/view.h"

namespace tessera {

namespace {

std::vector<int64_t> labels_of(const Tensor& t, const char* what) {
  TS_CHECK(t.defined(), what, ": undefined labels");
  return raw::contiguous(raw::to(raw::to(t, kCPU), DType::Int64)).to_vector<int64_t>();
}

void check_pair(const Tensor& a, const Tensor& b, const char* what) {
  TS_CHECK(a.defined() && b.defined() && a.shape() == b.shape(), what, ": prediction ", a.defined() ? shape_str(a.shape()) : "undefined",
           " and target ", b.defined() ? shape_str(b.shape()) : "undefined", " differ in shape");
}

struct Overlap {
  std::vector<int64_t> inter, pred_count, target_count;
};

Overlap overlap(const Tensor& pred, const Tensor& target, int64_t k, const char* what) {
  check_pair(pred, target, what);
  const std::vector<int64_t> p = labels_of(pred, what), t = labels_of(target, what);
  Overlap o{std::vector<int64_t>(k, 0), std::vector<int64_t>(k, 0), std::vector<int64_t>(k, 0)};
  for (size_t i = 0; i < p.size(); ++i) {
    TS_CHECK(p[i] >= 0 && p[i] < k && t[i] >= 0 && t[i] < k, what, ": labels must be in [0, ", k, ")");
    ++o.pred_count[p[i]];
    ++o.target_count[t[i]];
    if (p[i] == t[i]) ++o.inter[p[i]];
  }
  return o;
}

}  // namespace

std::vector<double> iou_per_class(const Tensor& pred, const Tensor& target, int64_t k) {
  const Overlap o = overlap(pred, target, k, "iou_per_class");
  std::vector<double> out;
  for (int64_t c = 0; c < k; ++c) {
    const int64_t uni = o.pred_count[c] + o.target_count[c] - o.inter[c];
    out.push_back(uni ? static_cast<double>(o.inter[c]) / static_cast<double>(uni) : std::nan(""));
  }
  return out;
}

std::vector<double> dice_per_class(const Tensor& pred, const Tensor& target, int64_t k) {
  const Overlap o = overlap(pred, target, k, "dice_per_class");
  std::vector<double> out;
  for (int64_t c = 0; c < k; ++c) {
    const int64_t s = o.pred_count[c] + o.target_count[c];
    out.push_back(s ? 2.0 * static_cast<double>(o.inter[c]) / static_cast<double>(s) : std::nan(""));
  }
  return out;
}

double pixel_error(const Tensor& pred, const Tensor& target) {
  check_pair(pred, target, "pixel_error");
  const std::vector<int64_t> p = labels_of(pred, "pixel_error"), t = labels_of(target, "pixel_error");
  int64_t wrong = 0;
  for (size_t i = 0; i < p.size(); ++i) wrong += p[i] != t[i];
  return p.empty() ? 0.0 : static_cast<double>(wrong) / static_cast<double>(p.size());
}

double rand_error(const Tensor& a_in, const Tensor& b_in) {
  check_pair(a_in, b_in, "rand_error");
  const std::vector<int64_t> a = labels_of(a_in, "rand_error"), b = labels_of(b_in, "rand_error");
  const double n = static_cast<double>(a.size());
  if (a.size() < 2) return 0.0;
  // Pairs that agree = pairs together in both + pairs apart in both, from the contingency table.
  std::map<std::pair<int64_t, int64_t>, int64_t> joint;
  std::unordered_map<int64_t, int64_t> ca, cb;
  for (size_t i = 0; i < a.size(); ++i) {
    ++joint[{a[i], b[i]}];
    ++ca[a[i]];
    ++cb[b[i]];
  }
  auto pairs = [](double m) { return m * (m - 1) / 2; };
  double both = 0, in_a = 0, in_b = 0;
  for (const auto& [k, v] : joint) both += pairs(static_cast<double>(v));
  for (const auto& [k, v] : ca) in_a += pairs(static_cast<double>(v));
  for (const auto& [k, v] : cb) in_b += pairs(static_cast<double>(v));
  const double total = pairs(n);
  const double agree = total - in_a - in_b + 2 * both;  // together in both, or apart in both
  return 1.0 - agree / total;
}

Tensor connected_components(const Tensor& mask, int64_t* count, int connectivity) {
  TS_CHECK(mask.defined() && mask.dim() == 2, "connected_components: expected an [H, W] mask");
  TS_CHECK(connectivity == 4 || connectivity == 8, "connected_components: connectivity must be 4 or 8, got ", connectivity);
  const std::vector<int64_t> m = labels_of(mask, "connected_components");
  const int64_t H = mask.size(0), W = mask.size(1);
  Tensor out = zeros({H, W}, kInt64);
  int64_t* id = out.data<int64_t>();
  int64_t n = 0;
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < H * W; ++start) {
    if (m[start] == 0 || id[start] != 0) continue;
    id[start] = ++n;
    stack.push_back(start);
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      const int64_t y = p / W, x = p % W;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= H || xx < 0 || xx >= W || (connectivity == 4 && dy != 0 && dx != 0)) continue;
          const int64_t q = yy * W + xx;
          if (m[q] != 0 && id[q] == 0) {
            id[q] = n;
            stack.push_back(q);
          }
        }
    }
  }
  if (count) *count = n;
  return out;
}

InstanceScore instance_score(const Tensor& pred_foreground, const Tensor& true_instances, double iou_threshold) {
  check_pair(pred_foreground, true_instances, "instance_score");
  int64_t np = 0;
  const std::vector<int64_t> pc = labels_of(connected_components(pred_foreground, &np), "instance_score");
  const std::vector<int64_t> tc = labels_of(true_instances, "instance_score");
  int64_t nt = 0;
  for (int64_t v : tc) nt = std::max(nt, v);
  std::map<std::pair<int64_t, int64_t>, int64_t> inter;
  std::vector<int64_t> area_p(static_cast<size_t>(np) + 1, 0), area_t(static_cast<size_t>(nt) + 1, 0);
  for (size_t i = 0; i < pc.size(); ++i) {
    ++area_p[pc[i]];
    ++area_t[tc[i]];
    if (pc[i] > 0 && tc[i] > 0) ++inter[{pc[i], tc[i]}];
  }
  InstanceScore s;
  for (int64_t t = 1; t <= nt; ++t) s.true_cells += area_t[t] > 0;
  s.predicted = np;

  std::vector<int64_t> covered(static_cast<size_t>(np) + 1, 0);
  for (const auto& [pt, v] : inter) {
    const auto [p, t] = pt;
    const double iou = static_cast<double>(v) / static_cast<double>(area_p[p] + area_t[t] - v);
    if (iou > iou_threshold) ++s.matched;  // above one half: a match is unique on both sides
    if (v * 2 >= area_t[t]) ++covered[p];
  }
  for (int64_t p = 1; p <= np; ++p) s.merged += covered[p] >= 2;
  return s;
}

}  // namespace tessera
