// evaluate: COCO AP of a results file against a ground-truth instances file, with pycocotools'
// rules (bbox and segm), printed as pycocotools prints it and written as JSON.
//   evaluate --gt instances.json --results results.json [--iou-type bbox|segm|both] [--out metrics.json]
#include <cstdio>

#include "data/coco.h"
#include "drivers/args.h"
#include "drivers/common.h"
#include "eval/coco_eval.h"

using namespace tessera;

namespace {

int run(int argc, char** argv) {
  cli::Args args("evaluate", "COCO AP (bbox, segm) of detection results against a ground truth, as pycocotools computes it.");
  args.option("gt", "", "the ground truth: a COCO instances JSON")
      .option("results", "", "detections in the COCO results format (predict maskrcnn writes them)")
      .option("iou-type", "both", "bbox, segm or both")
      .option("out", "", "also write the numbers to this JSON file");
  args.parse(argc, argv);
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
