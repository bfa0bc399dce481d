// COCO evaluation (pycocotools' COCOeval, re-implemented).
#include "eval/coco_eval.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <unordered_map>

#include "core/file_io.h"
#include "core/parallel.h"
#include "distributed/dist.h"

namespace tessera {

using json = nlohmann::json;

// ---- results files

std::vector<CocoResult> load_coco_results(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TS_CHECK(in.good(), "cannot open COCO results file '", path, "'");
  return parse_coco_results(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()), path);
}

namespace {
// An integer of 64 bits, also written as 3.0 (nlohmann's get<int64_t> casts any double).
int64_t json_integer(const json& v, const std::string& where) {
  const bool ok = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)
                  : v.is_number_integer() ? true
                  : v.is_number() && v.get<double>() == std::floor(v.get<double>()) && std::fabs(v.get<double>()) < 0x1p63;
  TS_CHECK(ok, where, " must be an integer (of 64 bits), got ", v.dump());
  return v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
}
}  // namespace

std::vector<CocoResult> parse_coco_results(const std::string& json_text, const std::string& path) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    TS_ERROR(path, ": not valid JSON: ", e.what());
  }
  TS_CHECK(root.is_array(), path, ": COCO results must be a JSON array of detections");
  std::vector<CocoResult> out;
  for (size_t i = 0; i < root.size(); ++i) {
    const json& j = root[i];
    const std::string where = path + ": result " + std::to_string(i);
    TS_CHECK(j.is_object(), where, " is not an object");
    CocoResult r;
    try {
      r.image_id = json_integer(j.at("image_id"), where + ".image_id");
      r.category_id = json_integer(j.at("category_id"), where + ".category_id");
      r.score = j.at("score").get<double>();
      if (j.contains("bbox")) {
        const auto b = j.at("bbox").get<std::vector<double>>();
        TS_CHECK(b.size() == 4, where, ": bbox must be [x, y, w, h]");
        std::copy(b.begin(), b.end(), r.bbox.begin());
        r.has_bbox = true;
      }
      if (j.contains("segmentation") && j.at("segmentation").is_array()) {  // polygons
        const json& s = j.at("segmentation");
        TS_CHECK(!s.empty(), where, ": segmentation is an empty polygon list");
        for (size_t k = 0; k < s.size(); ++k) {
          const std::string at = where + ".segmentation[" + std::to_string(k) + "]";
          TS_CHECK(s[k].is_array(), at, " must be a polygon [x0, y0, x1, y1, ...]");
          std::vector<double> xy;
          for (const json& v : s[k]) {
            TS_CHECK(v.is_number(), at, " holds a value that is not a number: ", v.dump());
            xy.push_back(v.get<double>());
            TS_CHECK(std::isfinite(xy.back()), at, " holds a coordinate that is not finite");
          }
          TS_CHECK(xy.size() >= 6 && xy.size() % 2 == 0, at, " must hold at least 3 (x, y) points, got ", xy.size(), " numbers");
          r.polygons.push_back(std::move(xy));
        }
        r.has_segmentation = true;
      } else if (j.contains("segmentation")) {
        const json& s = j.at("segmentation");
        TS_CHECK(s.is_object(), where, ": segmentation must be an RLE object {size, counts} or a list of polygons");
        TS_CHECK(s.at("size").is_array(), where, ": segmentation.size must be [height, width]");
        std::vector<int64_t> size;
        for (const json& d : s.at("size")) size.push_back(json_integer(d, where + ".segmentation.size"));
        TS_CHECK(size.size() == 2 && size[0] > 0 && size[1] > 0, where, ": segmentation.size must be [height, width]");
        TS_CHECK(size[0] <= (int64_t{1} << 16) && size[1] <= (int64_t{1} << 16) && size[0] * size[1] <= (int64_t{1} << 28), where,
                 ": segmentation.size [", size[0], ", ", size[1], "] is larger than tessera decodes (sides up to 65536, 2^28 pixels)");
        r.height = size[0];
        r.width = size[1];
        const json& c = s.at("counts");
        if (c.is_string()) {
          r.rle = coco::rle_from_string(c.get<std::string>(), where);
        } else {
          TS_CHECK(c.is_array(), where, ": segmentation.counts must be a string or a list of counts");
          for (const json& e : c) {
            const int64_t v = json_integer(e, where + ".segmentation.counts");
            TS_CHECK(v >= 0 && v <= UINT32_MAX, where, ": RLE count ", v, " out of range");
            r.rle.push_back(static_cast<uint32_t>(v));
          }
        }
        uint64_t total = 0;
        for (uint32_t v : r.rle) total += v;
        TS_CHECK(total == static_cast<uint64_t>(r.height * r.width), where, ": segmentation counts cover ", total,
                 " pixels, its size says ", r.height * r.width);
        r.has_segmentation = true;
      }
    } catch (const json::exception& e) {
      TS_ERROR(where, ": ", e.what());
    }
    TS_CHECK(r.has_bbox || r.has_segmentation, where, ": needs a bbox or a segmentation");
    TS_CHECK(std::isfinite(r.score), where, ": the score is not a finite number");
    out.push_back(std::move(r));
  }
  return out;
}

void save_coco_results(const std::string& path, const std::vector<CocoResult>& results) {
  json root = json::array();
  for (const CocoResult& r : results) {
    json j = {{"image_id", r.image_id}, {"category_id", r.category_id}, {"score", r.score}};
    if (r.has_bbox) j["bbox"] = {r.bbox[0], r.bbox[1], r.bbox[2], r.bbox[3]};
    if (r.has_segmentation && !r.polygons.empty()) j["segmentation"] = r.polygons;
    else if (r.has_segmentation) j["segmentation"] = {{"size", {r.height, r.width}}, {"counts", coco::rle_to_string(r.rle)}};
    root.push_back(std::move(j));
  }
  const std::string text = root.dump();
  write_file_atomic(path, [&](std::ostream& o) { o << text; });
}

std::vector<CocoResult> detections_to_coco(const Detections& d, int64_t image_id, const std::vector<int64_t>& category_ids) {
  std::vector<CocoResult> out;
  const int64_t D = d.boxes.defined() ? d.boxes.size(0) : 0;
  if (D == 0) return out;
  const auto boxes = d.boxes.to(kCPU).to(kFloat64).to_vector<double>();
  const auto scores = d.scores.to(kCPU).to(kFloat64).to_vector<double>();
  const auto labels = d.labels.to(kCPU).to(kInt64).to_vector<int64_t>();
  const bool masks = d.masks.defined() && d.masks.size(0) == D;
  Tensor binary = masks ? gt(d.masks.to(kCPU), 0.5).to(kUInt8) : Tensor();
  for (int64_t i = 0; i < D; ++i) {
    const size_t k = static_cast<size_t>(i);
    TS_CHECK(labels[k] >= 1 && labels[k] < static_cast<int64_t>(category_ids.size()), "detections_to_coco: label ", labels[k],
             " has no category id");
    CocoResult r;
    r.image_id = image_id;
    r.category_id = category_ids[static_cast<size_t>(labels[k])];
    r.score = scores[k];
    r.bbox = {boxes[k * 4], boxes[k * 4 + 1], boxes[k * 4 + 2] - boxes[k * 4], boxes[k * 4 + 3] - boxes[k * 4 + 1]};
    r.has_bbox = true;
    if (masks) {
      r.rle = coco::rle_encode(binary.select(0, i).select(0, 0));
      r.height = binary.size(2);
      r.width = binary.size(3);
      r.has_segmentation = true;
    }
    out.push_back(std::move(r));
  }
  return out;
}

// ---- IoU

namespace {

using Box = std::array<double, 4>;  // x, y, w, h

// pycocotools' bbIou: crowd ground truth divides by the detection's area.
double box_iou_xywh(const Box& d, const Box& g, bool crowd) {
  const double w = std::min(d[0] + d[2], g[0] + g[2]) - std::max(d[0], g[0]);
  if (w <= 0) return 0;
  const double h = std::min(d[1] + d[3], g[1] + g[3]) - std::max(d[1], g[1]);
  if (h <= 0) return 0;
  const double i = w * h, da = d[2] * d[3], ga = g[2] * g[3];
  return i / (crowd ? da : da + ga - i);
}

// pycocotools' rleToBbox.
Box rle_bbox(const coco::Counts& c, int64_t h) {
  const size_t m = c.size() / 2 * 2;
  if (m == 0) return {0, 0, 0, 0};
  uint64_t xs = UINT64_MAX, ys = UINT64_MAX, xe = 0, ye = 0, cc = 0, xp = 0;
  const uint64_t H = static_cast<uint64_t>(h);
  xs = UINT64_MAX;
  ys = H;
  for (size_t j = 0; j < m; ++j) {
    cc += c[j];
    const uint64_t t = cc - j % 2, y = t % H, x = (t - y) / H;
    if (j % 2 == 0) {
      xp = x;
    } else if (xp < x) {
      ys = 0;
      ye = H - 1;
    }
    xs = std::min(xs, x);
    xe = std::max(xe, x);
    ys = std::min(ys, y);
    ye = std::max(ye, y);
  }
  return {double(xs), double(ys), double(xe - xs + 1), double(ye - ys + 1)};
}

struct Gt {
  int64_t id;
  double area;
  bool crowd;
  Box box;
  coco::Counts rle;
  uint64_t rle_area = 0;
  Box mask_box;  // rleToBbox of rle (segm)
};

struct Dt {
  int64_t id;  // 1-based position in the results list, as loadRes numbers them
  double score, area;
  Box box;
  coco::Counts rle;
  uint64_t rle_area = 0;
  Box mask_box;  // rleToBbox of rle (segm)
};

struct EvalImg {
  bool valid = false;
  std::vector<double> scores;               // [D] by decreasing score
  std::vector<std::vector<int64_t>> dt_match;  // [T][D] matched gt id (0: none)
  std::vector<std::vector<bool>> dt_ignore;    // [T][D]
  std::vector<bool> gt_ignore;              // [G]
};

constexpr int kT = 10, kR = 101, kA = 4, kM = 3;
const double kAreaRanges[kA][2] = {{0, 1e10}, {0, 1024}, {1024, 9216}, {9216, 1e10}};
const int kMaxDets[kM] = {1, 10, 100};

// numpy.linspace(start, stop, num): i * step + start, the last value exactly stop.
std::vector<double> linspace(double start, double stop, int num) {
  std::vector<double> v(static_cast<size_t>(num));
  const double step = (stop - start) / (num - 1);
  for (int i = 0; i < num; ++i) v[static_cast<size_t>(i)] = i * step + start;
  v.back() = stop;
  return v;
}

}  // namespace

CocoEvalStats coco_evaluate(const CocoDataset& gt_set, const std::vector<CocoResult>& results, const std::string& iou_type) {
  TS_CHECK(iou_type == "bbox" || iou_type == "segm", "coco_evaluate: iou_type must be 'bbox' or 'segm', got '", iou_type, "'");
  const bool segm = iou_type == "segm";
  const std::vector<double> iou_thrs = linspace(0.5, 0.95, kT), rec_thrs = linspace(0.0, 1.0, kR);
  const std::vector<int64_t>& cat_ids = gt_set.category_ids();
  const int64_t K = static_cast<int64_t>(cat_ids.size()), I = gt_set.size();
  std::unordered_map<int64_t, int64_t> image_index, cat_index;
  for (int64_t i = 0; i < I; ++i) image_index[gt_set.image(i).id] = i;
  for (int64_t k = 0; k < K; ++k) cat_index[cat_ids[static_cast<size_t>(k)]] = k;
  const int threads = num_threads();

  // Ground truth and detections per cell (image i, category k) = i * K + k, in file order. Ground
  // truth masks (polygons rasterised) are made image by image on every thread.
  std::vector<std::vector<Gt>> gts(static_cast<size_t>(I * K));
  std::vector<std::string> errors(static_cast<size_t>(I));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 8)
  for (int64_t i = 0; i < I; ++i) {
    try {
      const CocoImage& im = gt_set.image(i);
      for (const CocoAnnotation& a : im.annotations) {
        Gt g{a.id, a.area, a.iscrowd, {a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3]}, {}, 0, {}};
        if (segm) {
          g.rle = a.polygons.empty() ? coco::Counts(a.rle) : coco::polygons_to_rle(a.polygons, im.height, im.width);
          g.rle_area = static_cast<uint64_t>(coco::rle_area(g.rle));
          g.mask_box = rle_bbox(g.rle, im.height);
        }
        gts[static_cast<size_t>(i * K + cat_index.at(a.category_id))].push_back(std::move(g));
      }
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(i)] = e.what();
    }
  }
  for (const std::string& e : errors) TS_CHECK(e.empty(), "coco_evaluate: ", e);
  // Detections: checked in order; masks' areas and boxes on every thread; then filed in order.
  // pycocotools' loadRes takes its branch from the first result: with a bbox there, every result's
  // area is its box's w * h (for segm evaluation too) and a result without a segmentation gets its
  // box as a polygon; without, the areas (and the missing boxes) come from the masks. Polygon
  // segmentations are drawn at the image's size (annToRLE). Cases pycocotools fails on (a polygon
  // without a bbox, a later result without a bbox) take the mask's area and box.
  const int64_t N = static_cast<int64_t>(results.size());
  const bool box_areas = N > 0 && results[0].has_bbox;
  std::vector<int64_t> cell_of(static_cast<size_t>(N), -1);
  for (int64_t n = 0; n < N; ++n) {
    const CocoResult& r = results[static_cast<size_t>(n)];
    auto it = image_index.find(r.image_id);
    TS_CHECK(it != image_index.end(), "coco_evaluate: result ", n, " is for image id ", r.image_id,
             ", which the ground truth does not have");
    const CocoImage& im = gt_set.image(it->second);
    if (r.has_segmentation && r.polygons.empty())
      TS_CHECK(r.height == im.height && r.width == im.width, "coco_evaluate: result ", n, " has a ", r.height, "x", r.width,
               " segmentation for image id ", r.image_id, " of ", im.height, "x", im.width);
    for (const std::vector<double>& p : r.polygons)
      for (size_t q = 0; q < p.size(); ++q) {
        const double extent = static_cast<double>(q % 2 == 0 ? im.width : im.height);
        TS_CHECK(p[q] >= -extent && p[q] <= 2 * extent, "coco_evaluate: result ", n, ": polygon point ", q / 2, " (",
                 q % 2 == 0 ? "x" : "y", " = ", p[q], ") is more than an image size outside the ", im.height, "x", im.width,
                 " image ", r.image_id);
      }
    if (!r.has_segmentation && (segm || !box_areas))
      TS_CHECK(std::isfinite(r.bbox[0] + r.bbox[1] + r.bbox[2] + r.bbox[3]) && r.bbox[0] >= -im.width && r.bbox[1] >= -im.height &&
                   r.bbox[0] + r.bbox[2] <= 2.0 * im.width && r.bbox[1] + r.bbox[3] <= 2.0 * im.height,
               "coco_evaluate: result ", n, " has no segmentation and its bbox, which would stand for it, is more than an image "
               "size outside image ", r.image_id);
    auto k = cat_index.find(r.category_id);  // categories the ground truth lacks are not evaluated
    if (k != cat_index.end()) cell_of[static_cast<size_t>(n)] = it->second * K + k->second;
  }
  std::vector<Dt> all(static_cast<size_t>(N));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    if (cell_of[static_cast<size_t>(n)] < 0) continue;
    const CocoResult& r = results[static_cast<size_t>(n)];
    const CocoImage& im = gt_set.image(image_index.at(r.image_id));
    Dt& d = all[static_cast<size_t>(n)];
    d = Dt{n + 1, r.score, 0, r.bbox, {}, 0, {}};
    const bool box_area = box_areas && r.has_bbox;
    if (segm || !r.has_bbox || !box_area) {
      if (!r.polygons.empty()) {
        d.rle = coco::polygons_to_rle(r.polygons, im.height, im.width);
      } else if (r.has_segmentation) {
        d.rle = r.rle;
      } else {  // loadRes: [[x1, y1, x1, y2, x2, y2, x2, y1]]
        const double x1 = r.bbox[0], y1 = r.bbox[1], x2 = r.bbox[0] + r.bbox[2], y2 = r.bbox[1] + r.bbox[3];
        d.rle = coco::polygons_to_rle({{x1, y1, x1, y2, x2, y2, x2, y1}}, im.height, im.width);
      }
      d.rle_area = static_cast<uint64_t>(coco::rle_area(d.rle));
      d.mask_box = rle_bbox(d.rle, im.height);
      if (!r.has_bbox) d.box = d.mask_box;
    }
    d.area = box_area ? r.bbox[2] * r.bbox[3] : static_cast<double>(d.rle_area);
  }
  std::vector<std::vector<Dt>> dts(static_cast<size_t>(I * K));
  for (int64_t n = 0; n < N; ++n)
    if (cell_of[static_cast<size_t>(n)] >= 0) dts[static_cast<size_t>(cell_of[static_cast<size_t>(n)])].push_back(std::move(all[static_cast<size_t>(n)]));

  // evaluate(): per category, area range and image; the cells on every thread.
  std::vector<EvalImg> evals(static_cast<size_t>(K * kA * I));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16)
  for (int64_t cell = 0; cell < I * K; ++cell) {
    const int64_t i = cell / K, k = cell % K;
    const std::vector<Gt>& G0 = gts[static_cast<size_t>(cell)];
    std::vector<Dt>& D0 = dts[static_cast<size_t>(cell)];
    if (G0.empty() && D0.empty()) continue;
    // computeIoU: detections by decreasing score (stable), at most 100.
    std::stable_sort(D0.begin(), D0.end(), [](const Dt& a, const Dt& b) { return a.score > b.score; });
    if (D0.size() > 100) D0.resize(100);
    std::vector<std::vector<double>> ious(D0.size(), std::vector<double>(G0.size(), 0.0));
    for (size_t d = 0; d < D0.size(); ++d)
      for (size_t g = 0; g < G0.size(); ++g) {
        if (!segm) {
          ious[d][g] = box_iou_xywh(D0[d].box, G0[g].box, G0[g].crowd);
          continue;
        }
        // rleIou: only where the masks' boxes overlap.
        if (box_iou_xywh(D0[d].mask_box, G0[g].mask_box, G0[g].crowd) <= 0) continue;
        const double inter = static_cast<double>(coco::rle_intersection(D0[d].rle, G0[g].rle));
        const double uni = G0[g].crowd ? static_cast<double>(D0[d].rle_area)
                                       : static_cast<double>(D0[d].rle_area + G0[g].rle_area) - inter;
        ious[d][g] = inter / uni;
      }
    for (int a = 0; a < kA; ++a) {
      const double lo = kAreaRanges[a][0], hi = kAreaRanges[a][1];
      EvalImg& e = evals[static_cast<size_t>((k * kA + a) * I + i)];
      e.valid = true;
      // Ground truth: ignored (crowd or out of range) last, stable.
      std::vector<size_t> gorder(G0.size());
      std::iota(gorder.begin(), gorder.end(), 0);
      std::vector<bool> gign(G0.size());
      for (size_t g = 0; g < G0.size(); ++g) gign[g] = G0[g].crowd || G0[g].area < lo || G0[g].area > hi;
      std::stable_sort(gorder.begin(), gorder.end(), [&](size_t x, size_t y) { return gign[x] < gign[y]; });
      const size_t D = D0.size(), Gn = G0.size();
      e.scores.resize(D);
      for (size_t d = 0; d < D; ++d) e.scores[d] = D0[d].score;
      e.gt_ignore.resize(Gn);
      for (size_t g = 0; g < Gn; ++g) e.gt_ignore[g] = gign[gorder[g]];
      e.dt_match.assign(kT, std::vector<int64_t>(D, 0));
      e.dt_ignore.assign(kT, std::vector<bool>(D, false));
      std::vector<std::vector<int64_t>> gt_match(kT, std::vector<int64_t>(Gn, 0));
      if (D > 0 && Gn > 0)
        for (int t = 0; t < kT; ++t)
          for (size_t d = 0; d < D; ++d) {
            double best = std::min(iou_thrs[static_cast<size_t>(t)], 1 - 1e-10);
            int64_t m = -1;
            for (size_t g = 0; g < Gn; ++g) {
              const Gt& gg = G0[gorder[g]];
              if (gt_match[t][g] > 0 && !gg.crowd) continue;
              if (m > -1 && !e.gt_ignore[static_cast<size_t>(m)] && e.gt_ignore[g]) break;
              const double v = ious[d][gorder[g]];
              if (v < best) continue;
              best = v;
              m = static_cast<int64_t>(g);
            }
            if (m == -1) continue;
            e.dt_ignore[t][d] = e.gt_ignore[static_cast<size_t>(m)];
            e.dt_match[t][d] = G0[gorder[static_cast<size_t>(m)]].id;
            gt_match[t][static_cast<size_t>(m)] = D0[d].id;
          }
      // Unmatched detections outside the area range are ignored.
      for (size_t d = 0; d < D; ++d) {
        const bool out = D0[d].area < lo || D0[d].area > hi;
        for (int t = 0; t < kT; ++t)
          if (e.dt_match[t][d] == 0 && out) e.dt_ignore[t][d] = true;
      }
    }
  }

  // accumulate(): precision [T][R][K][A][M], recall [T][K][A][M].
  std::vector<double> precision(static_cast<size_t>(kT * kR * K * kA * kM), -1.0), recall(static_cast<size_t>(kT * K * kA * kM), -1.0);
  auto P = [&](int t, int r, int64_t k, int a, int m) -> double& {
    return precision[static_cast<size_t>((((t * kR + r) * K + k) * kA + a) * kM + m)];
  };
  auto Rc = [&](int t, int64_t k, int a, int m) -> double& { return recall[static_cast<size_t>(((t * K + k) * kA + a) * kM + m)]; };
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t k = 0; k < K; ++k)
    for (int a = 0; a < kA; ++a)
      for (int m = 0; m < kM; ++m) {
        const size_t maxdet = static_cast<size_t>(kMaxDets[m]);
        std::vector<double> scores;
        std::vector<std::vector<int64_t>> match(kT);
        std::vector<std::vector<bool>> ignore(kT);
        int64_t npig = 0;
        bool any = false;
        for (int64_t i = 0; i < I; ++i) {
          const EvalImg& e = evals[static_cast<size_t>((k * kA + a) * I + i)];
          if (!e.valid) continue;
          any = true;
          const size_t n = std::min(maxdet, e.scores.size());
          scores.insert(scores.end(), e.scores.begin(), e.scores.begin() + static_cast<std::ptrdiff_t>(n));
          for (int t = 0; t < kT; ++t) {
            match[t].insert(match[t].end(), e.dt_match[t].begin(), e.dt_match[t].begin() + static_cast<std::ptrdiff_t>(n));
            ignore[t].insert(ignore[t].end(), e.dt_ignore[t].begin(), e.dt_ignore[t].begin() + static_cast<std::ptrdiff_t>(n));
          }
          for (bool g : e.gt_ignore) npig += !g;
        }
        if (!any || npig == 0) continue;
        std::vector<size_t> order(scores.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return scores[x] > scores[y]; });
        const size_t nd = order.size();
        for (int t = 0; t < kT; ++t) {
          std::vector<double> rc(nd), pr(nd);
          double tp = 0, fp = 0;
          for (size_t q = 0; q < nd; ++q) {
            const size_t d = order[q];
            const bool ign = ignore[t][d], matched = match[t][d] != 0;
            if (matched && !ign) tp += 1;
            if (!matched && !ign) fp += 1;
            rc[q] = tp / static_cast<double>(npig);
            pr[q] = tp / (fp + tp + 2.220446049250313e-16);
          }
          Rc(t, k, a, m) = nd ? rc[nd - 1] : 0.0;
          for (size_t q = nd; q-- > 1;)
            if (pr[q] > pr[q - 1]) pr[q - 1] = pr[q];
          for (int r = 0; r < kR; ++r) {
            // searchsorted(rc, threshold, side="left"); past the end: the rest stay 0.
            const size_t idx = static_cast<size_t>(std::lower_bound(rc.begin(), rc.end(), rec_thrs[static_cast<size_t>(r)]) - rc.begin());
            if (idx >= nd) {
              for (int r2 = r; r2 < kR; ++r2) P(t, r2, k, a, m) = 0.0;
              break;
            }
            P(t, r, k, a, m) = pr[idx];
          }
        }
      }

  // summarize().
  auto summarize = [&](bool ap, int t_only, int a, int m) {
    double sum = 0;
    int64_t n = 0;
    for (int t = 0; t < kT; ++t) {
      if (t_only >= 0 && t != t_only) continue;
      for (int64_t k = 0; k < K; ++k) {
        if (ap) {
          for (int r = 0; r < kR; ++r) {
            const double v = P(t, r, k, a, m);
            if (v > -1) {
              sum += v;
              ++n;
            }
          }
        } else {
          const double v = Rc(t, k, a, m);
          if (v > -1) {
            sum += v;
            ++n;
          }
        }
      }
    }
    return n == 0 ? -1.0 : sum / static_cast<double>(n);
  };
  CocoEvalStats s;
  s.stats = {summarize(true, -1, 0, 2),  summarize(true, 0, 0, 2),   summarize(true, 5, 0, 2),   summarize(true, -1, 1, 2),
             summarize(true, -1, 2, 2),  summarize(true, -1, 3, 2),  summarize(false, -1, 0, 0), summarize(false, -1, 0, 1),
             summarize(false, -1, 0, 2), summarize(false, -1, 1, 2), summarize(false, -1, 2, 2), summarize(false, -1, 3, 2)};
  return s;
}

std::string CocoEvalStats::summary() const {
  static const char* lines[12] = {
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
      " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]",
      " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ]",
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]",
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ]",
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]"};
  std::ostringstream o;
  char buf[32];
  for (int i = 0; i < 12; ++i) {
    std::snprintf(buf, sizeof(buf), " = %0.3f\n", stats[static_cast<size_t>(i)]);
    o << lines[i] << buf;
  }
  return o.str();
}

std::map<std::string, double> CocoEvalStats::named(const std::string& prefix) const {
  std::map<std::string, double> m;
  for (size_t i = 0; i < stats.size(); ++i) m[prefix + "_" + kNames[i]] = stats[i];
  return m;
}

// ---- results between processes

namespace {

template <class T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

struct ByteReader {
  const std::string& bytes;
  size_t pos = 0;
  template <class T>
  T get() {
    TS_CHECK(bytes.size() - pos >= sizeof(T), "decode_coco_results: the bytes end at ", bytes.size(), " inside a result");
    T v;
    std::memcpy(&v, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
};

constexpr uint64_t kResultsMagic = 0x32525343'53534554ull;  // "TESSCSR2" (with polygons)

}  // namespace

std::string encode_coco_results(const std::vector<CocoResult>& results) {
  std::string out;
  put(out, kResultsMagic);
  put(out, static_cast<uint64_t>(results.size()));
  for (const CocoResult& r : results) {
    put(out, r.image_id);
    put(out, r.category_id);
    put(out, r.score);
    for (double v : r.bbox) put(out, v);
    put(out, static_cast<uint8_t>(r.has_bbox));
    put(out, static_cast<uint8_t>(r.has_segmentation));
    put(out, r.height);
    put(out, r.width);
    put(out, static_cast<uint64_t>(r.rle.size()));
    if (!r.rle.empty()) out.append(reinterpret_cast<const char*>(r.rle.data()), r.rle.size() * sizeof(uint32_t));
    put(out, static_cast<uint64_t>(r.polygons.size()));
    for (const std::vector<double>& p : r.polygons) {
      put(out, static_cast<uint64_t>(p.size()));
      out.append(reinterpret_cast<const char*>(p.data()), p.size() * sizeof(double));
    }
  }
  return out;
}

std::vector<CocoResult> decode_coco_results(const std::string& bytes) {
  ByteReader in{bytes};
  TS_CHECK(bytes.size() >= 16 && in.get<uint64_t>() == kResultsMagic, "decode_coco_results: not encoded COCO results");
  const uint64_t n = in.get<uint64_t>();
  constexpr size_t kMinResult = 8 * 2 + 8 * 5 + 2 + 8 * 4;
  TS_CHECK(n <= (bytes.size() - in.pos) / kMinResult, "decode_coco_results: ", n, " results cannot fit in ", bytes.size(), " bytes");
  std::vector<CocoResult> out(n);
  for (CocoResult& r : out) {
    r.image_id = in.get<int64_t>();
    r.category_id = in.get<int64_t>();
    r.score = in.get<double>();
    for (double& v : r.bbox) v = in.get<double>();
    r.has_bbox = in.get<uint8_t>() != 0;
    r.has_segmentation = in.get<uint8_t>() != 0;
    r.height = in.get<int64_t>();
    r.width = in.get<int64_t>();
    const uint64_t counts = in.get<uint64_t>();
    TS_CHECK(counts <= (bytes.size() - in.pos) / sizeof(uint32_t), "decode_coco_results: ", counts,
             " RLE counts cannot fit in the ", bytes.size() - in.pos, " bytes left");
    r.rle.resize(counts);
    if (counts > 0) std::memcpy(r.rle.data(), bytes.data() + in.pos, counts * sizeof(uint32_t));  // data() may be null
    in.pos += counts * sizeof(uint32_t);
    const uint64_t polygons = in.get<uint64_t>();
    TS_CHECK(polygons <= (bytes.size() - in.pos) / sizeof(uint64_t), "decode_coco_results: ", polygons,
             " polygons cannot fit in the ", bytes.size() - in.pos, " bytes left");
    r.polygons.resize(polygons);
    for (std::vector<double>& p : r.polygons) {
      const uint64_t values = in.get<uint64_t>();
      TS_CHECK(values <= (bytes.size() - in.pos) / sizeof(double), "decode_coco_results: a polygon of ", values,
               " numbers cannot fit in the ", bytes.size() - in.pos, " bytes left");
      p.resize(values);
      if (values > 0) std::memcpy(p.data(), bytes.data() + in.pos, values * sizeof(double));
      in.pos += values * sizeof(double);
    }
  }
  TS_CHECK(in.pos == bytes.size(), "decode_coco_results: ", bytes.size() - in.pos, " bytes left over after ", n, " results");
  return out;
}

std::vector<CocoResult> sharded_coco_results(int64_t num_images,
                                             const std::function<std::vector<CocoResult>(int64_t)>& results_of) {
  TS_CHECK(num_images >= 0, "sharded_coco_results: negative image count ", num_images);
  const int world = dist::world_size(), rank = dist::rank();
  // This rank's images in order, each preceded by its result count.
  std::vector<std::vector<CocoResult>> mine;
  for (int64_t i = rank; i < num_images; i += world) mine.push_back(results_of(i));
  if (world == 1) {
    std::vector<CocoResult> all;
    for (auto& v : mine) all.insert(all.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
    return all;
  }
  std::vector<CocoResult> flat;
  std::vector<int64_t> counts;
  for (auto& v : mine) {
    counts.push_back(static_cast<int64_t>(v.size()));
    flat.insert(flat.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
  }
  std::string bytes = encode_coco_results(flat);
  const uint64_t k = counts.size();
  if (k > 0) bytes.append(reinterpret_cast<const char*>(counts.data()), k * sizeof(int64_t));
  bytes.append(reinterpret_cast<const char*>(&k), sizeof(k));
  // Every rank's (results, per-image counts); then interleave back into image order.
  std::vector<std::vector<CocoResult>> per_rank(static_cast<size_t>(world));
  std::vector<std::vector<int64_t>> per_rank_counts(static_cast<size_t>(world));
  const std::vector<std::string> gathered = dist::all_gather_bytes(bytes);
  for (int r = 0; r < world; ++r) {
    const std::string& b = gathered[static_cast<size_t>(r)];
    uint64_t kr = 0;
    TS_CHECK(b.size() >= sizeof(kr), "sharded_coco_results: rank ", r, " sent ", b.size(), " bytes");
    std::memcpy(&kr, b.data() + b.size() - sizeof(kr), sizeof(kr));
    TS_CHECK(kr <= (b.size() - sizeof(kr)) / sizeof(int64_t), "sharded_coco_results: rank ", r, "'s image count ", kr, " is corrupt");
    const size_t results_bytes = b.size() - sizeof(kr) - kr * sizeof(int64_t);
    std::vector<int64_t>& c = per_rank_counts[static_cast<size_t>(r)];
    c.resize(kr);
    if (kr > 0) std::memcpy(c.data(), b.data() + results_bytes, kr * sizeof(int64_t));
    per_rank[static_cast<size_t>(r)] = decode_coco_results(b.substr(0, results_bytes));
  }
  std::vector<CocoResult> all;
  std::vector<size_t> next(static_cast<size_t>(world), 0), image_of_rank(static_cast<size_t>(world), 0);
  for (int64_t i = 0; i < num_images; ++i) {
    const size_t r = static_cast<size_t>(i % world), j = image_of_rank[r]++;
    TS_CHECK(j < per_rank_counts[r].size(), "sharded_coco_results: rank ", r, " sent ", per_rank_counts[r].size(),
             " images; image ", i, " is missing");
    const int64_t n = per_rank_counts[r][j];
    TS_CHECK(n >= 0 && next[r] + static_cast<size_t>(n) <= per_rank[r].size(), "sharded_coco_results: rank ", r,
             "'s counts do not match its results");
    for (int64_t q = 0; q < n; ++q) all.push_back(std::move(per_rank[r][next[r]++]));
  }
  return all;
}

}  // namespace tessera
