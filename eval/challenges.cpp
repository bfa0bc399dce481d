// ISBI 2012 and Cell Tracking Challenge measures (see challenges.h for the definitions).
#include "eval/challenges.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <limits>
#include <numeric>
#include <string>
#include <unordered_map>

#include "core/view.h"

namespace tessera {

namespace {

struct Grid {
  int64_t h = 0, w = 0;
};

std::vector<int64_t> ints_of(const Tensor& t) { return raw::contiguous(raw::to(raw::to(t, kCPU), DType::Int64)).to_vector<int64_t>(); }
std::vector<double> doubles_of(const Tensor& t) { return raw::contiguous(raw::to(raw::to(t, kCPU), DType::Float64)).to_vector<double>(); }

Grid grid_of(const Tensor& t, const char* what) {
  TS_CHECK(t.defined() && t.dim() == 2, what, ": expected an [H, W] slice, got ", t.defined() ? shape_str(t.shape()) : "undefined");
  return Grid{t.size(0), t.size(1)};
}

// 1 where the labels are nonzero (cells: the labels are never negative here).
std::vector<uint8_t> nonzero_of(const Tensor& t) {
  const std::vector<int64_t> v = ints_of(t);
  std::vector<uint8_t> on(v.size());
  for (size_t i = 0; i < v.size(); ++i) on[i] = v[i] != 0;
  return on;
}

Tensor labels_tensor(const std::vector<int64_t>& v, const Grid& g) { return from_vector<int64_t>(v).reshape({g.h, g.w}); }

// 4-connected components of the nonzero pixels, ids from 1 in row-major order.
std::vector<int64_t> components4(const std::vector<uint8_t>& on, const Grid& g) {
  std::vector<int64_t> lab(on.size(), 0);
  std::vector<int64_t> stack;
  int64_t next = 0;
  for (int64_t s = 0; s < static_cast<int64_t>(on.size()); ++s) {
    if (!on[s] || lab[s]) continue;
    lab[s] = ++next;
    stack.assign(1, s);
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      const int64_t y = p / g.w, x = p % g.w;
      const int64_t nb[4] = {x > 0 ? p - 1 : -1, y > 0 ? p - g.w : -1, x + 1 < g.w ? p + 1 : -1, y + 1 < g.h ? p + g.w : -1};
      for (int64_t q : nb)
        if (q >= 0 && on[q] && !lab[q]) {
          lab[q] = next;
          stack.push_back(q);
        }
    }
  }
  return lab;
}

// Vincent & Soille's flooding on a two-level image (0 = region, 1 = border), 4-connected, with
// Fiji's order: pixels sorted by level, ties in column-major order (x outer, y inner); neighbours
// left, up, right, down. Labels > 0, watershed lines 0.
std::vector<int64_t> watershed(const std::vector<uint8_t>& border, const Grid& g) {
  constexpr int64_t kMask = -2, kWshed = 0, kInit = -1, kInQueue = -3;
  const int64_t n = g.h * g.w;
  std::vector<int64_t> lab(n, kInit);
  std::vector<int64_t> level[2];
  for (int64_t x = 0; x < g.w; ++x)
    for (int64_t y = 0; y < g.h; ++y) level[border[y * g.w + x] ? 1 : 0].push_back(y * g.w + x);
  auto neighbours = [&](int64_t p, int64_t out[4]) {
    const int64_t y = p / g.w, x = p % g.w;
    out[0] = x > 0 ? p - 1 : -1;
    out[1] = y > 0 ? p - g.w : -1;
    out[2] = x + 1 < g.w ? p + 1 : -1;
    out[3] = y + 1 < g.h ? p + g.w : -1;
  };
  std::deque<int64_t> fifo;
  bool flag = false;
  int64_t current = 0;
  int64_t nb[4];
  for (const std::vector<int64_t>& pixels : level) {
    if (pixels.empty()) continue;
    for (int64_t p : pixels) {  // the level's pixels next to a basin or a watershed start the queue
      lab[p] = kMask;
      neighbours(p, nb);
      for (int64_t q : nb)
        if (q >= 0 && lab[q] >= kWshed) {
          fifo.push_back(p);
          lab[p] = kInQueue;
          break;
        }
    }
    while (!fifo.empty()) {
      const int64_t p = fifo.front();
      fifo.pop_front();
      neighbours(p, nb);
      for (int64_t q : nb) {
        if (q < 0) continue;
        if (lab[q] > 0) {
          if (lab[p] == kInQueue || (lab[p] == kWshed && flag)) {
            lab[p] = lab[q];
          } else if (lab[p] > 0 && lab[p] != lab[q]) {
            lab[p] = kWshed;
            flag = false;
          }
        } else if (lab[q] == kWshed) {
          if (lab[p] == kInQueue) {
            lab[p] = kWshed;
            flag = true;
          }
        } else if (lab[q] == kMask) {
          lab[q] = kInQueue;
          fifo.push_back(q);
        }
      }
    }
    for (int64_t p : pixels) {  // pixels still unreached are new minima
      if (lab[p] != kMask) continue;
      lab[p] = ++current;
      fifo.push_back(p);
      while (!fifo.empty()) {
        const int64_t r = fifo.front();
        fifo.pop_front();
        neighbours(r, nb);
        for (int64_t q : nb)
          if (q >= 0 && lab[q] == kMask) {
            fifo.push_back(q);
            lab[q] = current;
          }
      }
    }
  }
  for (int64_t& v : lab)
    if (v < 0) v = 0;
  return lab;
}

// Fiji's ClassificationStatistics: precision (recall) is 1 when there are no false positives
// (negatives); the F-score 0 when both are 0.
double fscore(double tp, double fp, double fn) {
  const double precision = fp == 0 ? 1.0 : tp / (tp + fp), recall = fn == 0 ? 1.0 : tp / (tp + fn);
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

// The contingency table of the ground truth's nonzero pixels: p_ij (j = 0: proposal boundary).
struct Contingency {
  double n = 0;  // ground-truth foreground pixels
  std::unordered_map<int64_t, double> row, col;  // a_i (over all j); b_j (j >= 1)
  std::unordered_map<uint64_t, double> joint;    // n_ij, i, j >= 1
  double boundary = 0;                           // sum_i n_i0
};

Contingency contingency(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  Contingency c;
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k] == 0) continue;
    c.n += 1;
    c.row[a[k]] += 1;
    if (b[k] == 0) {
      c.boundary += 1;
    } else {
      c.col[b[k]] += 1;
      c.joint[(static_cast<uint64_t>(a[k]) << 32) ^ static_cast<uint64_t>(b[k])] += 1;
    }
  }
  return c;
}

struct Counts {
  double tp = 0, fp = 0, fn = 0;
};

// The foreground-restricted Rand counts with N^2 normalisation (Fiji's
// getForegroundRestrictedRandIndexStatsN2): each proposal boundary pixel is its own segment.
Counts rand_counts(const Contingency& c) {
  TS_CHECK(c.n > 0, "ISBI Rand scores: the ground-truth slice has no foreground (cell) pixels");
  const double n = c.n;
  double sum_a2 = 0, sum_b2 = 0, sum_ab2 = 0;
  for (const auto& [i, v] : c.row) sum_a2 += (v / n) * (v / n);
  for (const auto& [j, v] : c.col) sum_b2 += (v / n) * (v / n);
  for (const auto& [ij, v] : c.joint) sum_ab2 += (v / n) * (v / n);
  sum_b2 += c.boundary / n / n;
  sum_ab2 += c.boundary / n / n;
  Counts r;
  r.tp = n * n * sum_ab2;
  r.fp = n * n * sum_b2 - r.tp;
  r.fn = n * n * sum_a2 - r.tp;
  return r;
}

double info_fscore(const Contingency& c) {
  TS_CHECK(c.n > 0, "ISBI information scores: the ground-truth slice has no foreground (cell) pixels");
  const double n = c.n, aux = c.boundary / n;
  auto xlogx = [](double p) { return p != 0 ? p * std::log(p) : 0.0; };
  double sum_a = 0, sum_b = 0, sum_ab = 0;
  for (const auto& [i, v] : c.row) sum_a += xlogx(v / n);
  for (const auto& [j, v] : c.col) sum_b += xlogx(v / n);
  for (const auto& [ij, v] : c.joint) sum_ab += xlogx(v / n);
  sum_b -= aux * std::log(n);
  sum_ab -= aux * std::log(n);
  const double ha = -sum_a, hb = -sum_b, hab = sum_b - sum_ab, hba = sum_a - sum_ab;
  double precision = (ha - hab) / ha, recall = (hb - hba) / hb;
  if (ha == 0) precision = 0.0, recall = 1.0;
  if (hb == 0) precision = 1.0, recall = 0.0;
  return 2.0 * precision * recall / (precision + recall);  // NaN when both are 0, as in Fiji
}

// ---- warping

// Simple points for the warping: Fiji tests a pixel as a point of the slice embedded in 3-D between
// two empty slices, with 6-connected objects and a 26-connected background. There the background
// around a pixel is always one component (through the empty slices), so the test is that the
// object pixels of the 8-neighbourhood form exactly one 4-connected component 4-adjacent to the
// pixel (holes may open and close; object additions, deletions, splits and mergers may not).
// Neighbourhood bit order: 0 UL, 1 U, 2 UR, 3 L, 4 R, 5 DL, 6 D, 7 DR.
std::array<bool, 256> simple_table() {
  std::array<bool, 256> t{};
  const int links[8][2] = {{0, 1}, {1, 2}, {0, 3}, {2, 4}, {3, 5}, {4, 7}, {5, 6}, {6, 7}};
  for (int m = 0; m < 256; ++m) {
    int comp[8];
    for (int i = 0; i < 8; ++i) comp[i] = (m >> i) & 1 ? i : -1;
    for (bool changed = true; changed;) {  // label propagation over the ring's 4-adjacencies
      changed = false;
      for (const auto& l : links)
        if (comp[l[0]] >= 0 && comp[l[1]] >= 0 && comp[l[0]] != comp[l[1]]) {
          const int lo = std::min(comp[l[0]], comp[l[1]]);
          comp[l[0]] = comp[l[1]] = lo;
          changed = true;
        }
    }
    int seen[8], count = 0;
    for (int i : {1, 3, 4, 6})  // components touching the 4-neighbours
      if (comp[i] >= 0 && std::find(seen, seen + count, comp[i]) == seen + count) seen[count++] = comp[i];
    t[m] = count == 1;
  }
  return t;
}

}  // namespace

std::vector<double> isbi_thresholds() {
  std::vector<double> t;
  for (double th = 0.0; th <= 1.0; th += 0.1) t.push_back(th);
  return t;
}

Tensor watershed_thinning(const Tensor& border) {
  const Grid g = grid_of(border, "watershed_thinning");
  return labels_tensor(watershed(nonzero_of(border), g), g);
}

double rand_fscore_foreground(const Tensor& gt_labels, const Tensor& pred_labels) {
  TS_CHECK(gt_labels.shape() == pred_labels.shape(), "rand_fscore_foreground: shapes differ");
  const Counts c = rand_counts(contingency(ints_of(gt_labels), ints_of(pred_labels)));
  return fscore(c.tp, c.fp, c.fn);
}

double info_fscore_foreground(const Tensor& gt_labels, const Tensor& pred_labels) {
  TS_CHECK(gt_labels.shape() == pred_labels.shape(), "info_fscore_foreground: shapes differ");
  return info_fscore(contingency(ints_of(gt_labels), ints_of(pred_labels)));
}

namespace {

WarpResult warp(const std::vector<uint8_t>& gt, const std::vector<double>& prob, const Grid& g, double th) {
  static const std::array<bool, 256> simple = simple_table();
  const int64_t W2 = g.w + 2, H2 = g.h + 2;
  std::vector<uint8_t> src(W2 * H2, 0), tgt(W2 * H2, 0);
  std::vector<float> real(W2 * H2, 0.0f);
  for (int64_t y = 0; y < g.h; ++y)
    for (int64_t x = 0; x < g.w; ++x) {
      const int64_t p = (y + 1) * W2 + x + 1;
      src[p] = gt[y * g.w + x];
      real[p] = static_cast<float>(prob[y * g.w + x]);
      tgt[p] = real[p] <= th ? 0 : 1;
    }
  struct Mismatch {
    int64_t p;
    float z;
  };
  // Fiji recomputes the disagreements after each pass, in column-major order, and sorts them by
  // confidence (stably). Only disagreements are ever flipped, and a flip ends one, so each pass's
  // list is the previous one without the pixels it flipped, in the same order: filter instead.
  std::vector<Mismatch> mismatches;
  for (int64_t x = 1; x <= g.w; ++x)
    for (int64_t y = 1; y <= g.h; ++y) {
      const int64_t p = y * W2 + x;
      if (src[p] != tgt[p]) mismatches.push_back({p, static_cast<float>(std::abs(static_cast<double>(real[p]) - th))});
    }
  std::stable_sort(mismatches.begin(), mismatches.end(), [](const Mismatch& a, const Mismatch& b) { return a.z > b.z; });
  for (size_t before = SIZE_MAX; !mismatches.empty() && mismatches.size() != before;) {
    before = mismatches.size();
    for (const Mismatch& m : mismatches) {
      const int64_t p = m.p;
      const int mask = src[p - W2 - 1] | src[p - W2] << 1 | src[p - W2 + 1] << 2 | src[p - 1] << 3 | src[p + 1] << 4 |
                       src[p + W2 - 1] << 5 | src[p + W2] << 6 | src[p + W2 + 1] << 7;
      if (simple[mask]) src[p] = src[p] ? 0 : 1;
    }
    mismatches.erase(std::remove_if(mismatches.begin(), mismatches.end(), [&](const Mismatch& m) { return src[m.p] == tgt[m.p]; }),
                     mismatches.end());
  }
  WarpResult r;
  std::vector<uint8_t> warped(g.h * g.w);
  for (int64_t y = 0; y < g.h; ++y)
    for (int64_t x = 0; x < g.w; ++x) warped[y * g.w + x] = src[(y + 1) * W2 + x + 1];
  const std::vector<int64_t> comp = components4(warped, g);
  r.mismatches = static_cast<int64_t>(mismatches.size());
  std::vector<int64_t> mark(warped.size(), -1);  // BFS visits of the split test, by mismatch
  std::vector<int64_t> stack;
  for (size_t k = 0; k < mismatches.size(); ++k) {
    const int64_t p2 = mismatches[k].p, y = p2 / W2 - 1, x = p2 % W2 - 1, p = y * g.w + x;
    std::vector<int64_t> ids, nbrs;
    for (int64_t dy = -1; dy <= 1; ++dy)
      for (int64_t dx = -1; dx <= 1; ++dx) {
        const int64_t yy = y + dy, xx = x + dx;
        if ((dx == 0 && dy == 0) || yy < 0 || yy >= g.h || xx < 0 || xx >= g.w) continue;
        const int64_t q = yy * g.w + xx;
        nbrs.push_back(q);
        if (std::find(ids.begin(), ids.end(), comp[q]) == ids.end()) ids.push_back(comp[q]);
      }
    const bool on = warped[p] != 0;
    if (ids.size() == 1 && ids[0] == 0) {
      ++(on ? r.object_deletions : r.object_additions);
    } else if (ids.size() == 1) {
      ++(on ? r.hole_additions : r.hole_deletions);
    } else if (ids.size() == 2) {
      if (!on) {
        ++r.hole_additions;
        continue;
      }
      // Without this pixel, do its neighbours of its own object fall apart (a split)?
      const int64_t a = comp[p];
      std::vector<int64_t> own;
      for (int64_t q : nbrs)
        if (comp[q] == a) own.push_back(q);
      // ids holds a and one other id, so it is a split exactly when the pixel's own neighbours
      // fall into two or more groups: search a without the pixel from one of them, and stop as
      // soon as all are reached (the common case, a few steps around the pixel).
      bool split = false;
      if (!own.empty() && std::find(ids.begin(), ids.end(), a) != ids.end()) {
        const int64_t tag = static_cast<int64_t>(k);
        size_t left = own.size() - 1;
        mark[own[0]] = tag;
        stack.assign(1, own[0]);
        auto is_own = [&](int64_t u) { return std::find(own.begin(), own.end(), u) != own.end(); };
        for (size_t head = 0; head < stack.size() && left > 0;) {  // breadth first: the neighbours are near
          const int64_t q = stack[head++];
          const int64_t qy = q / g.w, qx = q - qy * g.w;
          const int64_t nb[4] = {qx > 0 ? q - 1 : -1, qy > 0 ? q - g.w : -1, qx + 1 < g.w ? q + 1 : -1, qy + 1 < g.h ? q + g.w : -1};
          for (int64_t u : nb)
            if (u >= 0 && u != p && comp[u] == a && mark[u] != tag) {
              mark[u] = tag;
              if (is_own(u)) --left;
              stack.push_back(u);
            }
        }
        split = left > 0;
      }
      ++(split ? r.splits : r.hole_deletions);
    } else {
      ++(on ? r.splits : r.mergers);
    }
  }
  std::vector<int64_t> w64(warped.begin(), warped.end());
  r.warped = labels_tensor(w64, g);
  return r;
}

}  // namespace

WarpResult warp_ground_truth(const Tensor& gt_mask, const Tensor& prob, double threshold) {
  const Grid g = grid_of(gt_mask, "warp_ground_truth");
  TS_CHECK(prob.shape() == gt_mask.shape(), "warp_ground_truth: ground truth ", shape_str(gt_mask.shape()), " and proposal ",
           shape_str(prob.shape()), " differ in shape");
  return warp(nonzero_of(gt_mask), doubles_of(prob), g, threshold);
}

IsbiScores isbi_scores(const Tensor& gt_in, const Tensor& prob_in, bool with_warping) {
  TS_CHECK(gt_in.defined() && prob_in.defined() && gt_in.shape() == prob_in.shape() && (gt_in.dim() == 2 || gt_in.dim() == 3),
           "isbi_scores: ground truth ", gt_in.defined() ? shape_str(gt_in.shape()) : "undefined", " and proposal ",
           prob_in.defined() ? shape_str(prob_in.shape()) : "undefined", " must be the same [S, H, W] or [H, W]");
  TS_CHECK(is_floating(prob_in.dtype()), "isbi_scores: the proposal must be probabilities (floating), got ", dtype_name(prob_in.dtype()));
  const Tensor gt = gt_in.dim() == 2 ? gt_in.unsqueeze(0) : gt_in, prob = prob_in.dim() == 2 ? prob_in.unsqueeze(0) : prob_in;
  const int64_t S = gt.size(0);
  const Grid g{gt.size(1), gt.size(2)};
  const int64_t n = g.h * g.w;
  const std::vector<double> gv = doubles_of(gt), pv = doubles_of(prob);
  const std::vector<double> ths = isbi_thresholds();
  IsbiScores r;
  r.slices = S;
  // Each slice at each threshold, slices in parallel (each one's work is its own); then the sums
  // in slice order, so that the result does not depend on the thread count.
  struct SliceScore {
    double vrand = 0, vinfo = 0;
    Counts rand, pixel;
    int64_t splits = 0, mergers = 0;
  };
  const size_t T = ths.size();
  std::vector<SliceScore> per(T * static_cast<size_t>(S));
  std::vector<std::string> errors(static_cast<size_t>(S));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t s = 0; s < S; ++s) {
    try {
      for (size_t t = 0; t < T; ++t) {
        const double th = ths[t];
        SliceScore& o = per[t * S + s];
        std::vector<uint8_t> truth(n), region(n), border(n), cell(n);
        for (int64_t i = 0; i < n; ++i) {
          // Fiji's casts: the labels and probabilities as float, compared with the double threshold.
          const double gl = static_cast<float>(gv[s * n + i]), pr = static_cast<float>(pv[s * n + i]);
          truth[i] = gl > th;
          region[i] = pr > th;
          border[i] = !region[i];
          cell[i] = gl > 0;
          o.pixel.tp += region[i] && cell[i];
          o.pixel.fp += region[i] && !cell[i];
          o.pixel.fn += !region[i] && cell[i];
        }
        const std::vector<int64_t> a = components4(truth, g);
        const std::vector<int64_t> thinned = watershed(border, g);
        const Contingency thin = contingency(a, thinned);  // V_Rand and V_Info share it
        const Counts rc = rand_counts(thin);
        o.vrand = fscore(rc.tp, rc.fp, rc.fn);
        o.vinfo = info_fscore(thin);
        o.rand = rand_counts(contingency(a, components4(region, g)));
        if (with_warping) {
          const std::vector<double> slice(pv.begin() + s * n, pv.begin() + (s + 1) * n);
          const WarpResult w = warp(cell, slice, g, th);
          o.splits = w.splits;
          o.mergers = w.mergers;
        }
      }
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(s)] = "slice " + std::to_string(s) + ": " + e.what();
    }
  }
  for (const std::string& e : errors) TS_CHECK(e.empty(), "isbi_scores: ", e);
  double best_vrand = -1, best_vinfo = -1, best_rand = -1, best_pixel = -1, best_warp = std::numeric_limits<double>::infinity();
  for (size_t t = 0; t < T; ++t) {
    const double th = ths[t];
    double vrand = 0, vinfo = 0;
    Counts rand_sum, pixel_sum;
    int64_t splits = 0, mergers = 0;
    for (int64_t s = 0; s < S; ++s) {
      const SliceScore& o = per[t * S + s];
      vrand += o.vrand;
      vinfo += o.vinfo;
      rand_sum.tp += o.rand.tp, rand_sum.fp += o.rand.fp, rand_sum.fn += o.rand.fn;
      pixel_sum.tp += o.pixel.tp, pixel_sum.fp += o.pixel.fp, pixel_sum.fn += o.pixel.fn;
      splits += o.splits;
      mergers += o.mergers;
    }
    vrand /= static_cast<double>(S);
    vinfo /= static_cast<double>(S);
    const double frand = fscore(rand_sum.tp, rand_sum.fp, rand_sum.fn), fpix = fscore(pixel_sum.tp, pixel_sum.fp, pixel_sum.fn);
    // Strictly better replaces (Fiji keeps the first of equal scores); NaN never wins.
    if (vrand > best_vrand) best_vrand = vrand, r.v_rand_threshold = th;
    if (vinfo > best_vinfo) best_vinfo = vinfo, r.v_info_threshold = th;
    if (frand > best_rand) best_rand = frand, r.rand_threshold = th;
    if (fpix > best_pixel) best_pixel = fpix, r.pixel_threshold = th;
    const double werr = static_cast<double>(splits + mergers) / static_cast<double>(S * n);
    if (with_warping && werr < best_warp) best_warp = werr, r.warping_threshold = th, r.splits = splits, r.mergers = mergers;
  }
  r.v_rand = std::max(best_vrand, 0.0);
  r.v_info = std::max(best_vinfo, 0.0);
  r.rand_error = 1.0 - std::max(best_rand, 0.0);
  r.pixel_error = 1.0 - std::max(best_pixel, 0.0);
  r.warping_error = with_warping ? best_warp : std::nan("");
  return r;
}

CtcScores ctc_scores(const std::vector<Tensor>& reference, const std::vector<Tensor>& predicted) {
  TS_CHECK(reference.size() == predicted.size(), "ctc_scores: ", reference.size(), " reference frames but ", predicted.size(), " predicted");
  TS_CHECK(!reference.empty(), "ctc_scores: no frames");
  CtcScores r;
  r.frames = static_cast<int64_t>(reference.size());
  for (size_t f = 0; f < reference.size(); ++f) {
    TS_CHECK(reference[f].defined() && predicted[f].defined() && reference[f].shape() == predicted[f].shape() && reference[f].dim() == 2,
             "ctc_scores: frame ", f, ": reference ", reference[f].defined() ? shape_str(reference[f].shape()) : "undefined",
             " and prediction ", predicted[f].defined() ? shape_str(predicted[f].shape()) : "undefined", " must be the same [H, W]");
    const std::vector<int64_t> a = ints_of(reference[f]), b = ints_of(predicted[f]);
    std::unordered_map<int64_t, int64_t> size_r, size_s;
    std::unordered_map<int64_t, std::unordered_map<int64_t, int64_t>> inter;  // r -> s -> |R n S|
    for (size_t i = 0; i < a.size(); ++i) {
      TS_CHECK(a[i] >= 0 && b[i] >= 0, "ctc_scores: frame ", f, ": negative instance id");
      if (a[i]) ++size_r[a[i]];
      if (b[i]) ++size_s[b[i]];
      if (a[i] && b[i]) ++inter[a[i]][b[i]];
    }
    std::unordered_map<int64_t, int64_t> matches_of_s;  // detection -> references it matches
    for (const auto& [rid, rn] : size_r) {
      ++r.references;
      int64_t match = 0, overlap = 0;
      auto it = inter.find(rid);
      if (it != inter.end())
        for (const auto& [sid, k] : it->second)
          if (2 * k > rn) match = sid, overlap = k;  // at most one S covers more than half of R
      if (!match) {
        ++r.false_negatives;
        continue;
      }
      ++r.matched;
      ++matches_of_s[match];
      r.jaccard_sum += static_cast<double>(overlap) / static_cast<double>(rn + size_s[match] - overlap);
    }
    for (const auto& [sid, sn] : size_s) {
      auto it = matches_of_s.find(sid);
      if (it == matches_of_s.end()) ++r.false_positives;
      else r.splits += it->second - 1;
    }
  }
  r.seg = r.references ? r.jaccard_sum / static_cast<double>(r.references) : 0.0;
  // AOGM-D with the challenge's weights: split 5, false negative 10, false positive 1; AOGM-D0,
  // the cost of detecting everything from nothing, is 10 per reference object.
  const double aogm = 5.0 * r.splits + 10.0 * r.false_negatives + 1.0 * r.false_positives, aogm0 = 10.0 * r.references;
  r.det = aogm0 > 0 ? 1.0 - std::min(aogm, aogm0) / aogm0 : 0.0;
  return r;
}

}  // namespace tessera
