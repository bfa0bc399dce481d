// COCO instance annotations: parsing with field-by-field validation, and samples.
#include "data/coco.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "core/file_io.h"
#include "core/view.h"
#include "data/coco_mask.h"
#include "data/image.h"

namespace tessera {

namespace {

using json = nlohmann::json;

// Image sizes an annotation file may claim: masks are decoded at the image's size.
constexpr int64_t kMaxCocoSide = 1 << 16, kMaxCocoPixels = int64_t{1} << 28;

struct Reader {
  const std::string& file;
  const json& get(const json& obj, const char* key, const std::string& where) const {
    TS_CHECK(obj.is_object() && obj.contains(key), file, ": ", where, " has no '", key, "'");
    return obj[key];
  }
  int64_t integer(const json& obj, const char* key, const std::string& where) const {
    const json& v = get(obj, key, where);
    // Integers, also written as 3.0, within int64 (a cast of 8.9e76 was undefined: found by fuzz_coco).
    const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)
                          : v.is_number_integer() ? true
                          : v.is_number() && v.get<double>() == std::floor(v.get<double>()) && std::fabs(v.get<double>()) < 0x1p63;
    TS_CHECK(in_range, file, ": ", where, ".", key, " must be an integer (of 64 bits), got ", v.dump());
    return v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
  }
  double number(const json& obj, const char* key, const std::string& where) const {
    const json& v = get(obj, key, where);
    TS_CHECK(v.is_number(), file, ": ", where, ".", key, " must be a number, got ", v.dump());
    return v.get<double>();
  }
  std::string string(const json& obj, const char* key, const std::string& where) const {
    const json& v = get(obj, key, where);
    TS_CHECK(v.is_string(), file, ": ", where, ".", key, " must be a string, got ", v.dump());
    return v.get<std::string>();
  }
  std::vector<double> numbers(const json& v, const std::string& where) const {
    TS_CHECK(v.is_array(), file, ": ", where, " must be an array of numbers");
    std::vector<double> out;
    for (const json& e : v) {
      TS_CHECK(e.is_number(), file, ": ", where, " must hold numbers only, got ", e.dump());
      out.push_back(e.get<double>());
    }
    return out;
  }
};

}  // namespace

Tensor coco_annotation_mask(const CocoAnnotation& a, int64_t h, int64_t w, const std::string& what) {
  if (!a.polygons.empty()) return coco::polygons_to_mask(a.polygons, h, w);
  return coco::rle_decode(a.rle, h, w, what);
}

namespace {
std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  TS_CHECK(in.good(), "cannot open ", what, " '", path, "'");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
}  // namespace

CocoDataset::CocoDataset(const std::string& annotation_file, const std::string& images_dir, bool include_crowd)
    : CocoDataset(Text{}, read_text(annotation_file, "COCO annotation file"), annotation_file, images_dir, include_crowd) {}

CocoDataset CocoDataset::parse(const std::string& json_text, const std::string& name, const std::string& images_dir,
                               bool include_crowd) {
  return CocoDataset(Text{}, json_text, name, images_dir, include_crowd);
}

CocoDataset::CocoDataset(Text, const std::string& json_text, const std::string& annotation_file, const std::string& images_dir,
                         bool include_crowd)
    : file_(annotation_file), dir_(images_dir), include_crowd_(include_crowd) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    TS_ERROR(annotation_file, ": not valid JSON: ", e.what());
  }
  const Reader r{annotation_file};
  TS_CHECK(root.is_object(), annotation_file, ": the top level must be an object");
  const json& cats = r.get(root, "categories", "the file");
  TS_CHECK(cats.is_array(), annotation_file, ": 'categories' must be an array");
  std::vector<std::pair<int64_t, std::string>> categories;
  for (size_t i = 0; i < cats.size(); ++i) {
    const std::string where = "categories[" + std::to_string(i) + "]";
    categories.emplace_back(r.integer(cats[i], "id", where), r.string(cats[i], "name", where));
  }
  std::sort(categories.begin(), categories.end());
  for (const auto& [id, name] : categories) {
    TS_CHECK(!label_of_.count(id), annotation_file, ": category id ", id, " appears twice");
    category_ids_.push_back(id);
    category_names_.push_back(name);
    label_of_[id] = static_cast<int64_t>(category_ids_.size());
  }

  const json& imgs = r.get(root, "images", "the file");
  TS_CHECK(imgs.is_array(), annotation_file, ": 'images' must be an array");
  std::map<int64_t, size_t> by_id;
  for (size_t i = 0; i < imgs.size(); ++i) {
    const std::string where = "images[" + std::to_string(i) + "]";
    CocoImage im{r.integer(imgs[i], "id", where), r.integer(imgs[i], "height", where), r.integer(imgs[i], "width", where),
                 r.string(imgs[i], "file_name", where), {}};
    TS_CHECK(im.height > 0 && im.width > 0, annotation_file, ": ", where, " has a non-positive size");
    TS_CHECK(im.height <= kMaxCocoSide && im.width <= kMaxCocoSide && im.height * im.width <= kMaxCocoPixels, annotation_file,
             ": ", where, " claims ", im.height, "x", im.width, " pixels, more than tessera decodes (sides up to ", kMaxCocoSide,
             ", ", kMaxCocoPixels, " pixels)");
    TS_CHECK(!by_id.count(im.id), annotation_file, ": image id ", im.id, " appears twice");
    by_id[im.id] = images_.size();
    images_.push_back(im);
  }

  const json& anns = r.get(root, "annotations", "the file");
  TS_CHECK(anns.is_array(), annotation_file, ": 'annotations' must be an array");
  for (size_t i = 0; i < anns.size(); ++i) {
    const std::string where = "annotations[" + std::to_string(i) + "]";
    const json& j = anns[i];
    CocoAnnotation a{};
    a.id = r.integer(j, "id", where);
    const int64_t image_id = r.integer(j, "image_id", where);
    a.category_id = r.integer(j, "category_id", where);
    a.iscrowd = j.contains("iscrowd") && r.integer(j, "iscrowd", where) != 0;
    a.area = j.contains("area") ? r.number(j, "area", where) : 0.0;
    a.bbox = r.numbers(r.get(j, "bbox", where), where + ".bbox");
    TS_CHECK(a.bbox.size() == 4, annotation_file, ": ", where, ".bbox must be [x, y, w, h]");
    auto im = by_id.find(image_id);
    TS_CHECK(im != by_id.end(), annotation_file, ": ", where, " refers to unknown image id ", image_id);
    TS_CHECK(label_of_.count(a.category_id), annotation_file, ": ", where, " refers to unknown category id ", a.category_id);
    const CocoImage& owner = images_[im->second];
    const json& seg = r.get(j, "segmentation", where);
    if (seg.is_array()) {
      for (size_t k = 0; k < seg.size(); ++k) {
        a.polygons.push_back(r.numbers(seg[k], where + ".segmentation[" + std::to_string(k) + "]"));
        TS_CHECK(a.polygons.back().size() >= 6 && a.polygons.back().size() % 2 == 0, annotation_file, ": ", where,
                 ".segmentation[", k, "] must hold at least 3 (x, y) points");
        for (size_t q = 0; q < a.polygons.back().size(); ++q) {
          const double v = a.polygons.back()[q], extent = static_cast<double>(q % 2 == 0 ? owner.width : owner.height);
          TS_CHECK(std::isfinite(v) && v >= -extent && v <= 2 * extent, annotation_file, ": ", where, ".segmentation[", k, "] point ",
                   q / 2, " (", q % 2 == 0 ? "x" : "y", " = ", v, ") is more than an image size outside the ", owner.height, "x",
                   owner.width, " image");
        }
      }
      TS_CHECK(!a.polygons.empty(), annotation_file, ": ", where, ".segmentation is an empty polygon list");
    } else if (seg.is_object()) {
      const std::vector<double> size = r.numbers(r.get(seg, "size", where + ".segmentation"), where + ".segmentation.size");
      TS_CHECK(size.size() == 2 && size[0] == static_cast<double>(owner.height) && size[1] == static_cast<double>(owner.width),
               annotation_file, ": ", where, ".segmentation.size must be the image's [height, width] = [", owner.height,
               ", ", owner.width, "]");
      const json& counts = r.get(seg, "counts", where + ".segmentation");
      if (counts.is_string()) {
        a.rle = coco::rle_from_string(counts.get<std::string>(), annotation_file + ": " + where);
      } else {
        for (double c : r.numbers(counts, where + ".segmentation.counts")) {
          TS_CHECK(c >= 0 && c == std::floor(c) && c <= 4294967295.0, annotation_file, ": ", where,
                   ".segmentation.counts must be non-negative integers below 2^32");
          a.rle.push_back(static_cast<uint32_t>(c));
        }
      }
      uint64_t total = 0;
      for (uint32_t c : a.rle) total += c;
      TS_CHECK(total == static_cast<uint64_t>(owner.height * owner.width), annotation_file, ": ", where,
               ".segmentation counts cover ", total, " pixels, the image has ", owner.height * owner.width);
    } else {
      TS_ERROR(annotation_file, ": ", where, ".segmentation must be a list of polygons or an RLE object");
    }
    images_[im->second].annotations.push_back(std::move(a));
  }
  std::sort(images_.begin(), images_.end(), [](const CocoImage& a, const CocoImage& b) { return a.id < b.id; });
}

int64_t CocoDataset::label_of(int64_t category_id) const {
  auto it = label_of_.find(category_id);
  TS_CHECK(it != label_of_.end(), "COCO: unknown category id ", category_id);
  return it->second;
}

std::string CocoDataset::describe(int64_t index) const {
  const CocoImage& im = images_.at(static_cast<size_t>(index));
  return "image " + std::to_string(index) + " (id " + std::to_string(im.id) + ", '" + im.file_name + "')";
}

Sample CocoDataset::get(int64_t index) const {
  TS_CHECK(index >= 0 && index < size(), "CocoDataset: index ", index, " out of range [0, ", size(), ")");
  const CocoImage& im = images_[static_cast<size_t>(index)];
  const std::string path = (std::filesystem::path(dir_) / im.file_name).string();
  Sample s;
  s.image = read_image(path, 3);
  s.image_id = im.id;
  s.name = path;
  TS_CHECK(s.image.size(1) == im.height && s.image.size(2) == im.width, path, " is ", s.image.size(1), "x",
           s.image.size(2), " but ", file_, " says ", im.height, "x", im.width);
  std::vector<float> boxes;
  std::vector<int64_t> labels, crowd;
  std::vector<Tensor> masks;
  for (const CocoAnnotation& a : im.annotations) {
    if (a.iscrowd && !include_crowd_) continue;
    // torchvision's ConvertCocoPolysToMask: xywh -> xyxy clamped to the image; degenerate boxes out.
    const double x1 = std::clamp(a.bbox[0], 0.0, static_cast<double>(im.width));
    const double y1 = std::clamp(a.bbox[1], 0.0, static_cast<double>(im.height));
    const double x2 = std::clamp(a.bbox[0] + a.bbox[2], 0.0, static_cast<double>(im.width));
    const double y2 = std::clamp(a.bbox[1] + a.bbox[3], 0.0, static_cast<double>(im.height));
    if (!(x2 > x1 && y2 > y1)) continue;
    boxes.insert(boxes.end(), {static_cast<float>(x1), static_cast<float>(y1), static_cast<float>(x2), static_cast<float>(y2)});
    labels.push_back(label_of(a.category_id));
    crowd.push_back(a.iscrowd ? 1 : 0);
    masks.push_back(coco_annotation_mask(a, im.height, im.width, path + " annotation " + std::to_string(a.id)));
  }
  const int64_t k = static_cast<int64_t>(labels.size());
  s.boxes = k ? from_vector<float>(boxes, {k, 4}) : zeros({0, 4});
  s.labels = from_vector<int64_t>(labels, {k});
  s.iscrowd = from_vector<int64_t>(crowd, {k});
  s.masks = k ? stack(masks, 0) : zeros({0, im.height, im.width}, kUInt8);
  return s;
}

void save_coco_annotations(const std::string& path, const std::vector<Sample>& samples,
                           const std::vector<std::string>& category_names) {
  json images = json::array(), annotations = json::array(), categories = json::array();
  for (size_t c = 0; c < category_names.size(); ++c) categories.push_back({{"id", c + 1}, {"name", category_names[c]}});
  int64_t ann_id = 1;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    TS_CHECK(s.image.defined() && s.image.dim() == 3, "save_coco_annotations: sample ", i, " has no image [C, H, W]");
    const int64_t h = s.image.size(1), w = s.image.size(2), id = static_cast<int64_t>(i) + 1;
    images.push_back({{"id", id}, {"height", h}, {"width", w}, {"file_name", s.name.empty() ? std::to_string(id) + ".png" : s.name}});
    const int64_t k = s.boxes.defined() ? s.boxes.size(0) : 0;
    TS_CHECK(k == 0 || (s.labels.defined() && s.labels.numel() == k && s.masks.defined() && s.masks.size(0) == k),
             "save_coco_annotations: sample ", i, " needs a label and a mask per box");
    const auto boxes = k ? s.boxes.to(kFloat64).to_vector<double>() : std::vector<double>{};
    const auto labels = k ? s.labels.to(kInt64).to_vector<int64_t>() : std::vector<int64_t>{};
    for (int64_t j = 0; j < k; ++j) {
      const coco::Counts rle = coco::rle_encode(s.masks.select(0, j));
      const double* b = &boxes[static_cast<size_t>(j * 4)];
      const int64_t label = labels[static_cast<size_t>(j)];
      TS_CHECK(label >= 1 && label <= static_cast<int64_t>(category_names.size()), "save_coco_annotations: sample ", i,
               " has label ", label, " outside 1..", category_names.size());
      annotations.push_back({{"id", ann_id++},
                             {"image_id", id},
                             {"category_id", label},
                             {"iscrowd", 0},
                             {"area", static_cast<double>(coco::rle_area(rle))},
                             {"bbox", {b[0], b[1], b[2] - b[0], b[3] - b[1]}},
                             {"segmentation", {{"size", {h, w}}, {"counts", coco::rle_to_string(rle)}}}});
    }
  }
  const std::string text = json{{"images", images}, {"annotations", annotations}, {"categories", categories}}.dump();
  write_file_atomic(path, [&](std::ostream& o) { o << text; });
}

}  // namespace tessera
