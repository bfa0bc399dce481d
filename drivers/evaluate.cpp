// evaluate: COCO AP of a results file against a ground-truth instances file, with pycocotools'
// rules (bbox and segm), printed as pycocotools prints it and written as JSON; or, as
// `evaluate unet`, the U-Net paper's challenge measures of a prediction (eval/challenges.h).
//   evaluate --gt instances.json --results results.json [--iou-type bbox|segm|both] [--out metrics.json]
//   evaluate unet --gt train-labels.tif --pred train-volume_prob.tif   ISBI 2012: V_Rand, V_Info, Rand, pixel, warping
//   evaluate unet --gt 01_GT/SEG --pred predictions/                   CTC: SEG, DET (man_segTTT.tif vs *TTT*_instances.tif / maskTTT.tif)
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "data/coco.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/tiff.h"
#include "eval/challenges.h"
#include "eval/segmentation.h"
#include "drivers/args.h"
#include "drivers/common.h"
#include "eval/coco_eval.h"

using namespace tessera;

namespace {

namespace fs = std::filesystem;

std::string lower_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}
bool is_tif(const fs::path& p) { return lower_extension(p) == ".tif" || lower_extension(p) == ".tiff"; }

// The TIFFs of a folder by frame number; `want` picks the names (e.g. man_seg*, *_instances, mask*).
std::map<int64_t, std::string> frames_in(const fs::path& dir, bool (*want)(const std::string&)) {
  std::map<int64_t, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || !is_tif(e.path()) || !want(name)) continue;
    const int64_t t = frame_number(name);
    if (t < 0) continue;
    TS_CHECK(!out.count(t), "evaluate unet: two files of frame ", t, " in '", dir.string(), "': '", out[t], "' and '", e.path().string(), "'");
    out[t] = e.path().string();
  }
  return out;
}

int run_unet(const cli::Args& args) {
  TS_CHECK(args.has("gt") && args.has("pred"), "evaluate unet: give --gt and --pred (see --help)");
  fs::path gt_path = args.str("gt");
  const fs::path pred = args.str("pred");
  std::map<std::string, double> values;
  if (fs::is_directory(gt_path)) {  // Cell Tracking Challenge
    if (fs::is_directory(gt_path / "SEG")) gt_path /= "SEG";
    // CTC: man_segTTT.tif against the prediction of frame TTT. Otherwise (a folder of instance
    // masks: the Data Science Bowl's layout) x.tif / x.png against <pred>/x_instances.tif.
    std::vector<std::pair<std::string, std::string>> pairs;  // (reference, prediction)
    const auto truth = frames_in(gt_path, [](const std::string& n) { return n.rfind("man_seg", 0) == 0; });
    TS_CHECK(fs::is_directory(pred), "evaluate unet: --gt is a folder, so --pred must be a folder of instance images, not '", pred.string(), "'");
    if (!truth.empty()) {
      const auto found = frames_in(pred, [](const std::string& n) {
        return n.rfind("mask", 0) == 0 || n.find("_instances.") != std::string::npos;
      });
      for (const auto& [t, path] : truth) {
        auto it = found.find(t);
        TS_CHECK(it != found.end(), "evaluate unet: no prediction for frame ", t, " ('", path, "') in '", pred.string(),
                 "' (expected maskTTT.tif or *TTT*_instances.tif)");
        pairs.emplace_back(path, it->second);
      }
    } else {
      std::vector<fs::path> masks;
      for (const auto& e : fs::directory_iterator(gt_path)) {
        if (e.is_regular_file() && (is_tif(e.path()) || lower_extension(e.path()) == ".png")) masks.push_back(e.path());
      }
      std::sort(masks.begin(), masks.end());
      TS_CHECK(!masks.empty(), "evaluate unet: no man_segTTT.tif and no instance masks (.tif, .png) in '", gt_path.string(), "'");
      for (const fs::path& m : masks) {
        const fs::path p = pred / (m.stem().string() + "_instances.tif");
        TS_CHECK(fs::exists(p), "evaluate unet: no prediction '", p.string(), "' for '", m.string(), "' (predict unet --tiff writes it)");
        pairs.emplace_back(m.string(), p.string());
      }
    }
    std::vector<Tensor> ref, res;
    std::vector<Tensor> ref_fg, res_fg;
    for (const auto& [path, predicted] : pairs) {
      ref.push_back(read_label_image(path));
      res.push_back(read_label_image(predicted));
      TS_CHECK(ref.back().shape() == res.back().shape(), "evaluate unet: '", predicted, "' is ", shape_str(res.back().shape()),
               " but '", path, "' is ", shape_str(ref.back().shape()));
      ref_fg.push_back(gt(ref.back(), 0.0).to(kInt64).flatten());
      res_fg.push_back(gt(res.back(), 0.0).to(kInt64).flatten());
    }
    const CtcScores c = ctc_scores(ref, res);
    const std::vector<double> iou = iou_per_class(cat(res_fg), cat(ref_fg), 2);
    std::printf("Cell Tracking Challenge measures on %lld annotated images, %lld reference objects:\n", (long long)c.frames,
                (long long)c.references);
    std::printf("  SEG %.4f (mean Jaccard of the references; %lld matched at > 50%% overlap)\n", c.seg, (long long)c.matched);
    std::printf("  DET %.4f (%lld false negatives, %lld false positives, %lld splits)\n", c.det, (long long)c.false_negatives,
                (long long)c.false_positives, (long long)c.splits);
    std::printf("  foreground IoU %.4f\n", iou[1]);
    std::printf("  the U-Net paper's IoU (ISBI cell tracking challenge 2015): PhC-C2DH-U373 0.9203, DIC-C2DH-HeLa 0.7756\n");
    values = {{"seg", c.seg}, {"det", c.det}, {"references", double(c.references)}, {"matched", double(c.matched)},
              {"false_negatives", double(c.false_negatives)}, {"false_positives", double(c.false_positives)},
              {"splits", double(c.splits)}, {"foreground_iou", iou[1]}, {"frames", double(c.frames)}};
  } else {  // ISBI 2012
    const Tensor labels = read_label_stack(gt_path.string());
    const Tensor prob_stack = read_image_stack(pred.string(), 1);
    const Tensor prob = prob_stack.select(1, 0);
    TS_CHECK(prob.shape() == labels.shape(), "evaluate unet: the prediction '", pred.string(), "' is ", shape_str(prob.shape()),
             " but the ground truth '", gt_path.string(), "' is ", shape_str(labels.shape()));
    const bool warping = !args.has("no-warping");
    const IsbiScores s = isbi_scores(labels, prob, warping);
    std::printf("ISBI 2012 measures on %lld slices of %lld x %lld (each the best of 11 thresholds):\n", (long long)s.slices,
                (long long)labels.size(1), (long long)labels.size(2));
    std::printf("  V_Rand %.5f (threshold %.1f) | V_Info %.5f (threshold %.1f)   [thinned, foreground-restricted; 1 is perfect]\n",
                s.v_rand, s.v_rand_threshold, s.v_info, s.v_info_threshold);
    std::printf("  Rand error %.5f | pixel error %.5f", s.rand_error, s.pixel_error);
    if (warping)
      std::printf(" | warping error %.6f (%lld splits, %lld mergers; threshold %.1f)", s.warping_error, (long long)s.splits,
                  (long long)s.mergers, s.warping_threshold);
    std::printf("\n  the U-Net paper (ISBI 2012 test set): warping 0.000353, Rand 0.0382, pixel 0.0611\n");
    values = {{"v_rand", s.v_rand}, {"v_info", s.v_info}, {"rand_error", s.rand_error}, {"pixel_error", s.pixel_error},
              {"v_rand_threshold", s.v_rand_threshold}, {"v_info_threshold", s.v_info_threshold}, {"slices", double(s.slices)}};
    if (warping) {
      values["warping_error"] = s.warping_error;
      values["splits"] = double(s.splits);
      values["mergers"] = double(s.mergers);
    }
  }
  if (args.has("out")) driver::write_json(args.str("out"), values, {{"gt", args.str("gt")}, {"pred", args.str("pred")}});
  return 0;
}

int run(int argc, char** argv) {
  cli::Args args("evaluate", "COCO AP (bbox, segm) of detection results against a ground truth, as pycocotools computes it; evaluate unet: the ISBI 2012 and Cell Tracking Challenge measures.");
  args.option("gt", "", "the ground truth: a COCO instances JSON; evaluate unet: ISBI's label stack (train-labels.tif) or a CTC folder of man_segTTT.tif")
      .option("results", "", "detections in the COCO results format (predict maskrcnn writes them)")
      .option("pred", "", "evaluate unet: the probability stack (predict --tiff: <name>_prob.tif) or a folder of instance images (<name>_instances.tif, maskTTT.tif)")
      .flag("no-warping", "evaluate unet: leave out the warping error (the slow measure)")
      .option("iou-type", "both", "bbox, segm or both")
      .option("out", "", "also write the numbers to this JSON file");
  args.parse(argc, argv);
  if (!args.positional().empty()) {
    TS_CHECK(args.positional().front() == "unet" && args.positional().size() == 1, "evaluate: the only mode is 'unet' (COCO evaluation takes no mode), got '",
             args.positional().front(), "'");
    return run_unet(args);
  }
  TS_CHECK(args.has("gt") && args.has("results"), "evaluate: give --gt and --results (see --help)");
  const std::string type = args.str("iou-type");
  TS_CHECK(type == "bbox" || type == "segm" || type == "both", "evaluate: --iou-type must be bbox, segm or both, not '", type, "'");
  const CocoDataset gt(args.str("gt"), "", true);
  const std::vector<CocoResult> results = load_coco_results(args.str("results"));
  std::printf("%zu detections on %lld images, %lld categories\n", results.size(), (long long)gt.size(), (long long)gt.num_classes());
  std::map<std::string, double> values;
  for (const std::string t : {"bbox", "segm"}) {
    if (type != "both" && type != t) continue;
    const CocoEvalStats s = coco_evaluate(gt, results, t);
    std::printf("IoU metric: %s\n%s", t.c_str(), s.summary().c_str());
    values.merge(s.named(t));
  }
  if (args.has("out")) driver::write_json(args.str("out"), values, {{"gt", args.str("gt")}, {"results", args.str("results")}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tessera::driver::guarded_main(argc, argv, run); }
