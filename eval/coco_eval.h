// COCO detection evaluation with pycocotools' exact rules (COCOeval): bbox or segm IoU (crowd
// ground truth counts intersection over the detection's area), 10 IoU thresholds 0.50:0.05:0.95,
// 101 recall points, maxDets 1/10/100, area ranges all/small/medium/large, greedy matching by
// score with crowd and out-of-range ground truth ignored, precision made monotone and sampled at
// the recall points. The 12 summary numbers are COCOeval.stats.
//
// Results use the COCO results format: [{"image_id", "category_id", "bbox": [x, y, w, h], "score",
// "segmentation": {"size": [h, w], "counts": "..."}}].
#pragma once

#include <array>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/coco.h"
#include "data/coco_mask.h"
#include "models/roi_heads.h"

namespace tessera {

struct CocoResult {
  int64_t image_id = 0, category_id = 0;
  double score = 0;
  std::array<double, 4> bbox{};  // x, y, w, h
  bool has_bbox = false;
  coco::Counts rle;  // the segmentation as RLE (height x width), when has_segmentation and no polygons
  int64_t height = 0, width = 0;
  // Or as polygons [x0, y0, x1, y1, ...] (as some tools write results; their union is the mask, drawn
  // at the image's size when evaluated, as pycocotools' annToRLE does).
  std::vector<std::vector<double>> polygons;
  bool has_segmentation = false;
};

// Reads / writes (atomically) a results file; an Error names the file and the entry at fault.
std::vector<CocoResult> load_coco_results(const std::string& path);
std::vector<CocoResult> parse_coco_results(const std::string& json_text, const std::string& name);
void save_coco_results(const std::string& path, const std::vector<CocoResult>& results);

struct CocoEvalStats {
  // AP, AP50, AP75, AP small/medium/large, AR@1, AR@10, AR@100, AR small/medium/large (-1: undefined).
  std::array<double, 12> stats{};
  double ap() const { return stats[0]; }
  double ap50() const { return stats[1]; }
  double ap75() const { return stats[2]; }
  // The lines pycocotools' summarize() prints.
  std::string summary() const;
  // Short names of the 12 numbers, in order: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl.
  static constexpr std::array<const char*, 12> kNames = {"AP",  "AP50", "AP75",  "APs", "APm", "APl",
                                                         "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
  // The numbers by name, each prefixed "<prefix>_" (e.g. "segm_AP50"), for metrics files.
  std::map<std::string, double> named(const std::string& prefix) const;
};

// One image's detections (masks [D, 1, H, W] probabilities, binarised at 0.5) as results;
// category_ids[label] is the COCO category of a label (index 0, the background, unused).
std::vector<CocoResult> detections_to_coco(const Detections& detections, int64_t image_id,
                                           const std::vector<int64_t>& category_ids);

// Results as bytes and back (exact: scores and boxes keep every bit), for moving them between
// processes; decoding checks every length against the bytes there are (an Error otherwise).
std::string encode_coco_results(const std::vector<CocoResult>& results);
std::vector<CocoResult> decode_coco_results(const std::string& bytes);

// Evaluation sharded over the ranks of tessera::dist: this rank computes `results_of(i)` for the
// images i = rank, rank + world_size, ...; every rank returns all images' results, image by image
// in order, each image's in the order results_of gave them: the list one process would have made.
std::vector<CocoResult> sharded_coco_results(int64_t num_images,
                                             const std::function<std::vector<CocoResult>(int64_t)>& results_of);

// iou_type: "bbox" or "segm". Every result's image must be one of the ground truth's images.
CocoEvalStats coco_evaluate(const CocoDataset& ground_truth, const std::vector<CocoResult>& results, const std::string& iou_type);

}  // namespace tessera
