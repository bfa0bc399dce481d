// COCO instance annotations (the JSON of instances_*.json) as a detection dataset: boxes
// (x1, y1, x2, y2), contiguous labels 1..K (category ids in increasing order), instance masks
// decoded from polygons, compressed RLE and uncompressed RLE exactly as pycocotools decodes them.
// As torchvision's detection reference: degenerate boxes are dropped, crowd annotations too
// unless asked for.
#pragma once

#include <map>

#include "data/dataset.h"

namespace tessera {

struct CocoAnnotation {
  int64_t id, category_id;
  bool iscrowd;
  double area;
  std::vector<double> bbox;  // x, y, w, h
  std::vector<std::vector<double>> polygons;
  std::vector<uint32_t> rle;  // when not polygons
};

struct CocoImage {
  int64_t id, height, width;
  std::string file_name;
  std::vector<CocoAnnotation> annotations;
};

// Images may claim sides up to 65536 and 2^28 pixels (their masks are decoded at that size).
class CocoDataset : public Dataset {
 public:
  CocoDataset(const std::string& annotation_file, const std::string& images_dir, bool include_crowd = false);
  // The same from the file's text (`name` is used in messages).
  static CocoDataset parse(const std::string& json_text, const std::string& name, const std::string& images_dir = "",
                           bool include_crowd = false);
  int64_t size() const override { return static_cast<int64_t>(images_.size()); }
  Sample get(int64_t index) const override;
  std::string describe(int64_t index) const override;

  int64_t num_classes() const { return static_cast<int64_t>(category_ids_.size()); }  // without background
  const std::vector<int64_t>& category_ids() const { return category_ids_; }          // label l <-> category_ids()[l - 1]
  const std::vector<std::string>& category_names() const { return category_names_; }
  const CocoImage& image(int64_t index) const { return images_.at(static_cast<size_t>(index)); }
  int64_t label_of(int64_t category_id) const;

 private:
  struct Text {};
  CocoDataset(Text, const std::string& json_text, const std::string& name, const std::string& images_dir, bool include_crowd);
  std::string file_, dir_;
  bool include_crowd_;
  std::vector<CocoImage> images_;
  std::vector<int64_t> category_ids_;
  std::vector<std::string> category_names_;
  std::map<int64_t, int64_t> label_of_;
};

// Writes samples (image size, boxes, labels 1..K, masks) as a COCO instances file, atomically: image
// ids are the positions + 1 (as predict numbers its images), category ids the labels, segmentations compressed RLE,
// areas the masks' pixel counts, bboxes [x, y, w, h]. Makes a ground truth for COCO evaluation of
// any dataset, e.g. the synthetic shapes.
void save_coco_annotations(const std::string& path, const std::vector<Sample>& samples,
                           const std::vector<std::string>& category_names);

// The instance mask of one annotation on its image (uint8 [h, w]).
Tensor coco_annotation_mask(const CocoAnnotation& a, int64_t h, int64_t w, const std::string& what);

}  // namespace tessera
