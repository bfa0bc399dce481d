// End-to-end checks of the driver programs: each runs as a user would run it (a child process),
// and the test reads back what it wrote: the log lines, metrics JSON, pictures and the model file.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/safetensors.h"
#include "data/image.h"
#include "data/synthetic.h"
#include "data/tiff.h"
#include "eval/challenges.h"
#include "drivers/common.h"
#include "eval/coco_eval.h"
#include "eval/segmentation.h"
#include "optim/checkpoint.h"
#include "tessera.h"
#include "tests/test_helpers.h"

namespace fs = std::filesystem;

namespace tessera {
namespace {

struct Result {
  int code;
  std::string output;  // stdout and stderr together
};

// Runs a command line with its output captured in a file under `dir`.
Result run(const std::string& command, const fs::path& dir) {
  const fs::path log = dir / "command.log";
  const int status = std::system((command + " > '" + log.string() + "' 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  return Result{WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("tessera_driver_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string quoted(const fs::path& p) {
  std::string s = p.string();
  s.insert(s.begin(), '\'');
  s.push_back('\'');
  return s;
}

// A driver program: the build's, or the one in TESSERA_DRIVER_DIR when set (a relocated bundle,
// see scripts/gpu_check.sh).
std::string driver(const char* built, const char* name) {
  const char* dir = std::getenv("TESSERA_DRIVER_DIR");
  return dir != nullptr && *dir != '\0' ? quoted(fs::path(dir) / name) : std::string(built);
}

// OpenBLAS's kernel family this CPU's flags call for, from /proc/cpuinfo (not from tessera).
std::string expected_kernels() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    auto has = [&](const char* f) { return (line + " ").find(std::string(" ") + f + " ") != std::string::npos; };
    if (has("avx512f") && has("avx512bw") && has("avx512dq") && has("avx512vl")) return "SkylakeX";
    if (has("avx2") && has("fma")) return "Haswell";
    return "";
  }
  return "";
}

// A driver started with OPENBLAS_CORETYPE unset says in --verbose that OpenBLAS runs the kernels
// this CPU calls for, chosen by tessera.
void expect_best_kernels(const std::string& output) {
  const size_t at = output.find("cpu gemm: OpenBLAS ");
  ASSERT_NE(at, std::string::npos) << output;
  const std::string line = output.substr(at, output.find('\n', at) - at);
  const std::string want = expected_kernels();
  if (want.empty()) return;  // OpenBLAS's own choice on a CPU without AVX2
  const bool ok = line.find("OpenBLAS " + want + " kernels") != std::string::npos ||
                  (want == "SkylakeX" && (line.find("Cooperlake") != std::string::npos || line.find("SapphireRapids") != std::string::npos)) ||
                  (want == "Haswell" && line.find("OpenBLAS Zen kernels") != std::string::npos);
  EXPECT_TRUE(ok) << "this CPU calls for " << want << ": " << line;
}

const std::string kUnsetCoretype = "env -u OPENBLAS_CORETYPE ";
const std::string kTrain = driver(TESSERA_TRAIN_UNET, "train_unet");
const std::string kPredict = driver(TESSERA_PREDICT, "predict");
// A small network and data set: the whole run takes a second or two.
const std::string kSmallRun =
    " --width 4 --depth 2 --tile 92 --iters 6 --val-every 3 --log-every 2 --save-every 3"
    " --train-images 4 --val-images 2 --image-size 64 --workers 1 --threads 1";

TEST(Drivers, TrainUnetWritesLogsMetricsPicturesAndAModelThatPredictLoads) {
  const fs::path dir = scratch("train");
  const fs::path out = dir / "run";
  Result r = run(kUnsetCoretype + kTrain + kSmallRun + " --verbose --out " + quoted(out), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("  memory cpu: "), std::string::npos) << r.output;  // --verbose
  expect_best_kernels(r.output);
  // Progress lines with iteration, loss, throughput and ETA; a validation line; a final line.
  EXPECT_NE(r.output.find("iter      6/6 | loss "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("img/s"), std::string::npos);
  EXPECT_NE(r.output.find("eta "), std::string::npos);
  EXPECT_NE(r.output.find("validation @3: IoU(cells)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("done in "), std::string::npos);

  // metrics.jsonl: one JSON object per line; training lines at 2, 4, 6 and validations at 3, 6.
  std::ifstream metrics(out / "metrics.jsonl");
  std::string line;
  int train_lines = 0, val_lines = 0;
  while (std::getline(metrics, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) {
      ++train_lines;
      EXPECT_TRUE(std::isfinite(j["loss"].get<double>()));
      EXPECT_GT(j["images_per_s"].get<double>(), 0.0);
    }
    if (j.contains("val_iou")) {
      ++val_lines;
      const double iou = j["val_iou"].get<double>();
      EXPECT_TRUE(iou >= 0.0 && iou <= 1.0) << line;
    }
  }
  EXPECT_EQ(train_lines, 3);
  EXPECT_EQ(val_lines, 2);
  const auto summary = nlohmann::json::parse(std::ifstream(out / "summary.json"));
  EXPECT_EQ(summary["iters"].get<double>(), 6.0);
  EXPECT_EQ(summary["model"].get<std::string>(), (out / "model.safetensors").string());

  // The preview panel: input | overlay | probability | ground truth | weight map, side by side.
  Tensor preview = read_image((out / "preview_6.png").string());
  EXPECT_EQ(preview.size(0), 3);
  EXPECT_GE(preview.size(2), 5 * 52);

  // The model file carries its configuration and loads into a fresh U-Net.
  SafetensorsFile f = load_safetensors((out / "model.safetensors").string());
  EXPECT_EQ(f.metadata.at("model"), "unet");
  EXPECT_EQ(f.metadata.at("unet.tile"), "92");
  UNet net(driver::unet_options_from(f.metadata, "model.safetensors"));
  net.load_state_dict(f.tensors);
  EXPECT_EQ(net.options().width, 4);

  // predict on an image of another size (a synthetic cell picture, 70 x 83): every output has the
  // image's size, and the probability picture is what the network computes here, to 8 bits.
  const Tensor input = SyntheticCells(1, 7, 70, 83).get(0).image;
  const std::string image = (dir / "cells.png").string();
  write_png(image, input);
  const Tensor stored = read_image(image, 1);
  // Six steps teach the network little, so predict runs a freshly initialised one (with the same
  // configuration): its probabilities vary across the image.
  manual_seed(3);
  UNet fresh(net.options());
  save_module(fresh, (dir / "fresh.safetensors").string(), f.metadata);
  const fs::path pred = dir / "pred";
  r = run(kUnsetCoretype + kPredict + " unet --verbose --threads 1 --model " + quoted(dir / "fresh.safetensors") + " --out " +
              quoted(pred) + " " + image,
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_best_kernels(r.output);
  for (const char* suffix : {"_labels.png", "_prob.png", "_overlay.png"}) {
    Tensor p = read_image((pred / (std::string("cells") + suffix)).string());
    EXPECT_EQ(p.size(1), 70) << suffix;
    EXPECT_EQ(p.size(2), 83) << suffix;
  }
  fresh.eval();
  Tensor logits = predict_tiled(fresh, stored, net.output_size(92));
  Tensor prob = softmax(logits, 1).select(0, 0).select(0, 1);
  Tensor prob_png = read_image((pred / "cells_prob.png").string()).select(0, 0);
  EXPECT_LE(max(abs(sub(prob_png, prob))).item<float>(), 0.5f / 255 + 1e-6f);
  EXPECT_GT(max(prob).item<float>() - min(prob).item<float>(), 0.01f) << "a constant probability map tests nothing";
  Tensor labels = read_image((pred / "cells_labels.png").string()).select(0, 0);
  Tensor expect = argmax(logits, 1).squeeze(0).to(kFloat32);
  EXPECT_EQ(max(abs(sub(labels, expect))).item<float>(), 0.0f);

  // Many images: a folder (two more of this size, one of another) in batches of two; the outputs
  // are the single-image run's, the instances in results.json are the label image's connected
  // components, and images.json lists every input.
  const fs::path folder = dir / "many";
  fs::create_directories(folder);
  fs::copy_file(image, folder / "a_cells.png");
  write_png((folder / "b.png").string(), SyntheticCells(1, 8, 70, 83).get(0).image);
  write_png((folder / "c.png").string(), SyntheticCells(1, 9, 70, 83).get(0).image);
  write_png((folder / "d_small.png").string(), SyntheticCells(1, 10, 64, 75).get(0).image);
  std::ofstream(folder / "notes.txt") << "not an image";
  const fs::path many = dir / "pred_many";
  r = run(kPredict + " unet --threads 1 --batch 2 --model " + quoted(dir / "fresh.safetensors") + " --out " + quoted(many) + " " +
              quoted(folder),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("[4/4]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("img/s"), std::string::npos) << r.output;
  EXPECT_TRUE(test::equal(read_image((many / "a_cells_labels.png").string()), read_image((pred / "cells_labels.png").string())));
  const auto listed = nlohmann::json::parse(std::ifstream(many / "images.json"))["images"];
  ASSERT_EQ(listed.size(), 4u);
  EXPECT_EQ(listed[3]["height"].get<int64_t>(), 64);
  EXPECT_EQ(listed[3]["width"].get<int64_t>(), 75);
  const std::vector<CocoResult> instances = load_coco_results((many / "results.json").string());
  EXPECT_FALSE(instances.empty()) << "no foreground predicted: the instance check would test nothing";
  for (int64_t id = 1; id <= 4; ++id) {
    const std::string stem = listed[static_cast<size_t>(id - 1)]["file_name"].get<std::string>();
    const Tensor lab = read_image((many / (fs::path(stem).stem().string() + "_labels.png")).string()).select(0, 0);
    int64_t components = 0;
    connected_components(gt(lab, 0.0), &components);  // two classes: the foreground's components
    int64_t listed_here = 0;
    for (const CocoResult& c : instances) listed_here += c.image_id == id;
    EXPECT_EQ(listed_here, components) << stem;
  }
  r = run(kPredict + " unet --model " + quoted(dir / "fresh.safetensors") + " --out " + quoted(many) + " " + quoted(dir / "nothing*.png"), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("no file matches"), std::string::npos) << r.output;

  // Resume continues from the saved step and appends to the metrics.
  r = run(kTrain + kSmallRun + " --iters 8 --out " + quoted(out) + " --resume " + quoted(out / "checkpoint.safetensors"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("at step 6"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("iter      8/8"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

const std::string kTrainMaskRCNN = driver(TESSERA_TRAIN_MASKRCNN, "train_maskrcnn");
const std::string kEvaluate = driver(TESSERA_EVALUATE, "evaluate");

// --precision: bf16 trains and predicts (the model file says how it was trained, its weights stay
// float32); fp16 with a loss scale made to overflow skips its first steps, halving the scale each
// time, then trains.
TEST(Drivers, TrainUnetInReducedPrecision) {
  const fs::path dir = scratch("precision");
  Result r = run(kTrain + kSmallRun + " --precision bf16 --out " + quoted(dir / "bf16"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const SafetensorsFile model = load_safetensors((dir / "bf16" / "model.safetensors").string(), HalfLoad::Keep);
  EXPECT_EQ(model.metadata.at("train_precision"), "bf16");
  for (const auto& [name, t] : model.tensors) EXPECT_EQ(t.dtype(), kFloat32) << name;
  std::ifstream summary(dir / "bf16" / "summary.json");
  EXPECT_EQ(nlohmann::json::parse(summary)["precision"], "bf16");
  r = run(kPredict + " unet --precision bf16 --model " + quoted(dir / "bf16" / "model.safetensors") + " --out " +
              quoted(dir / "pred") + " " + quoted(dir / "bf16" / "val_example.png"),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("inference with autocast to bfloat16"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "pred" / "val_example_labels.png"));
  // A half checkpoint (every weight stored as BF16) predicts too: widened on load.
  std::map<std::string, Tensor> halves;
  for (const auto& [name, t] : model.tensors) halves[name] = t.to(kBFloat16);
  save_safetensors((dir / "half.safetensors").string(), halves, model.metadata);
  r = run(kPredict + " unet --precision bf16 --model " + quoted(dir / "half.safetensors") + " --out " +
              quoted(dir / "pred_half") + " " + quoted(dir / "bf16" / "val_example.png"),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "pred_half" / "val_example_labels.png"));

  r = run(kTrain + " --width 4 --depth 2 --tile 92 --iters 40 --val-every 40 --log-every 5 --save-every 40 --train-images 4"
                   " --val-images 1 --image-size 64 --workers 1 --threads 1 --precision fp16 --loss-scale 1e12 --out " +
              quoted(dir / "fp16"),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream metrics(dir / "fp16" / "metrics.jsonl");
  std::string line;
  double first_scale = 0, last_scale = 0, last_skipped = 0, last_loss = NAN;
  while (std::getline(metrics, line)) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("loss_scale")) continue;
    EXPECT_EQ(j["precision"], "fp16");
    if (first_scale == 0) first_scale = j["loss_scale"].get<double>();
    last_scale = j["loss_scale"].get<double>();
    last_skipped = j["skipped_steps"].get<double>();
    if (j["loss"].is_number()) last_loss = j["loss"].get<double>();
  }
  EXPECT_GT(last_skipped, 5.0) << r.output;   // 1e12 overflows float16 gradients: skipped, halved
  EXPECT_LT(last_skipped, 40.0) << r.output;  // and then it trains
  EXPECT_LT(last_scale, 1e12 / std::pow(2.0, last_skipped - 1));
  EXPECT_TRUE(std::isfinite(last_loss)) << r.output;
  EXPECT_GT(first_scale, last_scale);
}

TEST(Drivers, TrainMaskRCNNThenPredictAndEvaluate) {
  const fs::path dir = scratch("maskrcnn");
  const fs::path out = dir / "run";
  Result r = run(kTrainMaskRCNN +
                     " --iters 4 --log-every 2 --eval-every 2 --save-every 2 --train-images 4 --eval-images 3 --image-size 64"
                     " --rois-per-image 16 --detections-per-image 8 --anchor-sizes 8,16,32,64,128 --norm bn --batch 2 --workers 1 --threads 1"
                     " --out " +
                     quoted(out),
                 dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("iter      4/4 | loss "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resnet18-FPN (BatchNorm)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(cls "), std::string::npos);
  EXPECT_NE(r.output.find("eval @2 on 3 images"), std::string::npos) << r.output;
  std::ifstream metrics(out / "metrics.jsonl");
  std::string line;
  int train_lines = 0, eval_lines = 0;
  while (std::getline(metrics, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) {
      ++train_lines;
      for (const char* k : {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"})
        EXPECT_TRUE(j.contains(k) && std::isfinite(j[k].get<double>())) << k << " in " << line;
    }
    if (j.contains("segm_AP")) ++eval_lines;
  }
  EXPECT_EQ(train_lines, 2);
  EXPECT_EQ(eval_lines, 2);
  const Tensor preview = read_image((out / "preview_4.png").string());
  EXPECT_EQ(preview.size(1), 64);
  SafetensorsFile f = load_safetensors((out / "model.safetensors").string());
  EXPECT_EQ(f.metadata.at("model"), "maskrcnn");
  const driver::MaskRCNNConfig cfg = driver::maskrcnn_config_from(f.metadata, "model.safetensors");
  EXPECT_EQ(cfg.class_names, (std::vector<std::string>{"background", "square", "circle", "triangle"}));
  EXPECT_EQ(cfg.options.anchor_sizes, (std::vector<double>{8, 16, 32, 64, 128}));  // predict builds the same anchors
  EXPECT_NE(r.output.find("anchors 8,16,32,64,128"), std::string::npos) << r.output;

  // predict the held-out images (the driver's: seed 1 + 7919), then evaluate against the ground
  // truth the training run wrote: the numbers are coco_evaluate's on the same files.
  SyntheticShapes held(3, 1 + 7919, 64, 64);
  std::string images;
  for (int64_t i = 0; i < 3; ++i) {
    const std::string p = (dir / ("held" + std::to_string(i) + ".png")).string();
    write_png(p, held.get(i).image);
    images += " " + p;
  }
  const fs::path pred = dir / "pred";
  r = run(kPredict + " maskrcnn --threads 1 --score-threshold 0.0 --detections-per-image 5 --model " + quoted(out / "model.safetensors") + " --out " +
              quoted(pred) + images,
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const Tensor pic = read_image((pred / "held0_detections.png").string());
  EXPECT_EQ(pic.shape(), (Shape{3, 64, 64}));
  const std::vector<CocoResult> results = load_coco_results((pred / "results.json").string());
  std::map<int64_t, int> per_image;
  for (const CocoResult& c : results) {
    EXPECT_TRUE(c.image_id >= 1 && c.image_id <= 3);
    EXPECT_TRUE(c.has_segmentation && c.height == 64 && c.width == 64);
    ++per_image[c.image_id];
  }
  EXPECT_FALSE(results.empty());
  for (const auto& [id, n] : per_image) EXPECT_LE(n, 5) << "image " << id;  // --detections-per-image 5
  // The same images as a pattern, two per forward pass: images of one size need no padding, so each
  // image's detections are the single-image run's.
  r = run(kPredict + " maskrcnn --threads 1 --batch 2 --score-threshold 0.0 --detections-per-image 5 --model " +
              quoted(out / "model.safetensors") + " --out " + quoted(dir / "pred_batched") + " " + quoted(dir / "held*.png"),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("[3/3]"), std::string::npos) << r.output;
  const std::vector<CocoResult> batched = load_coco_results((dir / "pred_batched" / "results.json").string());
  ASSERT_EQ(batched.size(), results.size());
  for (size_t k = 0; k < results.size(); ++k) {
    EXPECT_EQ(batched[k].image_id, results[k].image_id) << k;
    EXPECT_NEAR(batched[k].score, results[k].score, 1e-4) << k;
  }
  r = run(kEvaluate + " --gt " + quoted(out / "eval_ground_truth.json") + " --results " + quoted(pred / "results.json") +
              " --out " + quoted(dir / "ap.json"),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("IoU metric: segm"), std::string::npos) << r.output;
  const auto ap = nlohmann::json::parse(std::ifstream(dir / "ap.json"));
  const CocoDataset gt((out / "eval_ground_truth.json").string(), "", true);
  EXPECT_EQ(ap["segm_AP"].get<double>(), coco_evaluate(gt, results, "segm").ap());
  EXPECT_EQ(ap["bbox_AP50"].get<double>(), coco_evaluate(gt, results, "bbox").ap50());
  // Bad input: a results file for images the ground truth does not have.
  std::ofstream(dir / "bad.json") << "[{\"image_id\": 99, \"category_id\": 1, \"score\": 0.5, \"bbox\": [0, 0, 4, 4]}]";
  r = run(kEvaluate + " --gt " + quoted(out / "eval_ground_truth.json") + " --results " + quoted(dir / "bad.json"), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("image id 99"), std::string::npos) << r.output;

  // A GroupNorm backbone (the default from scratch): the model file says so, and predict builds the
  // same network from it.
  const fs::path gn = dir / "gn";
  r = run(kTrainMaskRCNN + " --iters 2 --log-every 1 --eval-every 0 --train-images 2 --eval-images 1 --image-size 64"
                           " --rois-per-image 16 --detections-per-image 8 --workers 1 --threads 1 --out " + quoted(gn),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(GroupNorm(32))"), std::string::npos) << r.output;
  SafetensorsFile gf = load_safetensors((gn / "model.safetensors").string());
  EXPECT_EQ(driver::maskrcnn_config_from(gf.metadata, "gn").options.backbone.group_norm_groups, 32);
  EXPECT_FALSE(gf.tensors.count("backbone.body.bn1.running_mean"));
  r = run(kPredict + " maskrcnn --threads 1 --detections-per-image 5 --model " + quoted(gn / "model.safetensors") + " --out " + quoted(gn / "pred") +
              images,
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(gn / "pred" / "results.json"));
  fs::remove_all(dir);
}

// The same small runs with --device cuda: training, checkpoint, evaluation and prediction on the
// GPU end to end.
TEST(DriversCuda, TrainUnetAndMaskRCNNThenPredictOnCuda) {
  TS_SKIP_WITHOUT_CUDA();
  const fs::path dir = scratch("cuda");
  Result r = run(kTrain + kSmallRun + " --device cuda --verbose --out " + quoted(dir / "unet"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("  memory cuda:0: allocated "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("iter      6/6 | loss "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("validation @6: IoU(cells)"), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(dir / "unet" / "model.safetensors"));
  r = run(kTrainMaskRCNN +
              " --iters 4 --log-every 2 --eval-every 4 --save-every 4 --train-images 4 --eval-images 3 --image-size 64"
              " --rois-per-image 16 --detections-per-image 8 --anchor-sizes 8,16,32,64,128 --batch 2 --workers 1"
              " --device cuda --out " +
              quoted(dir / "maskrcnn"),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("iter      4/4 | loss "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("eval @4 on 3 images"), std::string::npos) << r.output;
  SyntheticShapes held(1, 3, 64, 64);
  write_png((dir / "held.png").string(), held.get(0).image);
  r = run(kPredict + " maskrcnn --device cuda --score-threshold 0.0 --detections-per-image 5 --model " +
              quoted(dir / "maskrcnn" / "model.safetensors") + " --out " + quoted(dir / "pred") + " " + quoted(dir / "held.png"),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "pred" / "results.json")) << r.output;
  fs::remove_all(dir);
}

// ---- the training drivers under mpirun (data parallelism over MPI)
#ifdef TESSERA_MPIEXEC
// mpirun as root, more ranks than cores, shared memory between the ranks; Open MPI's own
// allocations are not leaks of ours (sanitizer builds).
const std::string kMpirun = "ASAN_OPTIONS=detect_leaks=0 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none " +
                            std::string(TESSERA_MPIEXEC) + " --allow-run-as-root --oversubscribe --bind-to none ";
std::string mpirun(int ranks) { return kMpirun + "-np " + std::to_string(ranks) + " "; }

std::map<std::string, Tensor> model_tensors(const fs::path& file) { return load_safetensors(file.string()).tensors; }

// Largest |a - b| / (1e-6 + |b|max) over every tensor of two model files.
double model_difference(const fs::path& a, const fs::path& b) {
  const auto x = model_tensors(a), y = model_tensors(b);
  EXPECT_EQ(x.size(), y.size());
  double worst = 0;
  for (const auto& [name, t] : y) {
    if (!x.count(name)) return INFINITY;
    const double scale = amax(abs(t)).item<double>();
    worst = std::max(worst, amax(abs(sub(x.at(name), t))).item<double>() / (1e-6 + scale));
  }
  return worst;
}

// Two ranks with --batch 1 each train what one process trains with --batch 2: the same global
// batches (each rank loads its shard of the same shuffle) and the averaged gradient. Then a
// checkpoint written by two ranks resumes on one and one written by one resumes on two.
TEST(DriversMpi, TwoRanksTrainWhatOneProcessTrainsOnTheGlobalBatch) {
  const fs::path dir = scratch("mpi");
  const std::string common =
      " --width 4 --depth 2 --tile 92 --iters 4 --val-every 4 --log-every 2 --save-every 2 --train-images 8 --val-images 1"
      " --image-size 64 --workers 0 --threads 1 --dropout 0 --optimizer sgd --lr 0.05 --momentum 0.9";
  Result two = run(mpirun(2) + kTrain + common + " --batch 1 --out " + quoted(dir / "two"), dir);
  ASSERT_EQ(two.code, 0) << two.output;
  EXPECT_NE(two.output.find("data parallel: 2 ranks x batch 1 = global batch 2"), std::string::npos) << two.output;
  EXPECT_EQ(two.output.find("iter      2/4"), two.output.rfind("iter      2/4")) << "only rank 0 prints:\n" << two.output;
  Result one = run(kTrain + common + " --batch 2 --out " + quoted(dir / "one"), dir);
  ASSERT_EQ(one.code, 0) << one.output;
  // float32: the two ranks' convolutions see one image each instead of a batch of two.
  EXPECT_LE(model_difference(dir / "two" / "model.safetensors", dir / "one" / "model.safetensors"), 1e-4);

  // Resume: 2 ranks -> 1 and 1 -> 2, from the step-2 checkpoints, to step 4.
  const fs::path from_two = dir / "two_at_2.safetensors", from_one = dir / "one_at_2.safetensors";
  ASSERT_EQ(run(mpirun(2) + kTrain + common + " --iters 2 --batch 1 --out " + quoted(dir / "a"), dir).code, 0);
  fs::copy_file(dir / "a" / "checkpoint.safetensors", from_two);
  ASSERT_EQ(run(kTrain + common + " --iters 2 --batch 2 --out " + quoted(dir / "b"), dir).code, 0);
  fs::copy_file(dir / "b" / "checkpoint.safetensors", from_one);
  Result r = run(kTrain + common + " --batch 2 --resume " + quoted(from_two) + " --out " + quoted(dir / "c"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos);
  r = run(mpirun(2) + kTrain + common + " --batch 1 --resume " + quoted(from_one) + " --out " + quoted(dir / "d"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  // Both continue the same global batches from the same state as the uninterrupted run.
  EXPECT_LE(model_difference(dir / "c" / "model.safetensors", dir / "one" / "model.safetensors"), 1e-4);
  EXPECT_LE(model_difference(dir / "d" / "model.safetensors", dir / "one" / "model.safetensors"), 1e-4);
  fs::remove_all(dir);
}

// A rank that fails stops every rank, with its rank named, within seconds; so does a rank whose
// model differs from rank 0's. (Open MPI's MPMD form gives rank 1 its own arguments.)
TEST(DriversMpi, AFailingRankStopsTheOthersWithItsMessage) {
  const fs::path dir = scratch("mpifail");
  const std::string common = " --width 4 --depth 2 --iters 50 --train-images 4 --val-images 1 --image-size 64 --workers 0"
                             " --threads 1 --out " + quoted(dir / "run");
  const std::string launcher = kMpirun;
  const auto t0 = std::chrono::steady_clock::now();
  Result r = run(launcher + "-np 1 " + kTrain + common + " --tile 92 : -np 1 " + kTrain + common + " --tile 90", dir);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("rank 1 of 2: error: "), std::string::npos) << r.output;
  EXPECT_LT(secs, 60.0) << "the other rank was left waiting";
  r = run(launcher + "-np 1 " + kTrain + common + " --tile 92 : -np 1 " + kTrain + common + " --tile 92 --width 8", dir);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("rank 1's model differs from rank 0's"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

// Mask R-CNN on two ranks: data parallel training, and the evaluation sharded over the ranks (3
// images: rank 0 detects two, rank 1 one) with rank 0 alone printing and writing the COCO numbers.
TEST(DriversMpi, MaskRCNNTrainsAndEvaluatesOnTwoRanks) {
  const fs::path dir = scratch("mpimaskrcnn");
  Result r = run(mpirun(2) + kTrainMaskRCNN +
                     " --iters 2 --log-every 1 --eval-every 2 --save-every 2 --train-images 4 --eval-images 3 --image-size 64"
                     " --rois-per-image 16 --detections-per-image 8 --anchor-sizes 8,16,32,64,128 --batch 1 --workers 0 --threads 1"
                     " --out " + quoted(dir / "run"),
                 dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("data parallel: 2 ranks x batch 1 = global batch 2"), std::string::npos) << r.output;
  const size_t eval = r.output.find("eval @2 on 3 images");
  EXPECT_NE(eval, std::string::npos) << r.output;
  EXPECT_EQ(eval, r.output.rfind("eval @2 on 3 images")) << "only rank 0 prints:\n" << r.output;
  std::ifstream metrics(dir / "run" / "metrics.jsonl");
  std::string line;
  int eval_lines = 0;
  while (std::getline(metrics, line))
    if (nlohmann::json::parse(line).contains("segm_AP")) ++eval_lines;
  EXPECT_EQ(eval_lines, 1);
  EXPECT_TRUE(fs::exists(dir / "run" / "model.safetensors"));
  fs::remove_all(dir);
}

// A rank killed outright (SIGKILL: no exception, no MPI_Abort of its own) ends the run too: mpirun
// sees the death, names the rank and stops the survivor, which would otherwise wait forever in its
// next all-reduce. Rank 1 is a shell that execs the driver (keeping its pid) after arming a kill.
// (The bound is on the end of the run after the kill; the arming waits for training to start.)
TEST(DriversMpi, AKilledRankEndsTheRunWithinSeconds) {
  const fs::path dir = scratch("mpikill");
  const std::string common = " --width 4 --depth 2 --tile 92 --iters 100000 --train-images 4 --val-images 1 --image-size 64"
                             " --workers 0 --threads 1 --out " + quoted(dir / "run");
  const auto t0 = std::chrono::steady_clock::now();
  // The kill comes once rank 0 has logged training steps (at most a minute later).
  const std::string killer = "(n=0; until [ -s " + quoted(dir / "run" / "metrics.jsonl") +
                             " ] || [ \\$n -ge 300 ]; do sleep 0.2; n=\\$((n+1)); done; kill -KILL \\$\\$) & ";
  Result r = run(kMpirun + "-np 1 " + kTrain + common + " : -np 1 sh -c \"" + killer + "exec " + kTrain + common + "\"", dir);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("iter "), std::string::npos) << "training had not started when the rank was killed:\n" << r.output;
  EXPECT_NE(r.output.find("process rank 1 with PID"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("signal 9"), std::string::npos) << r.output;
  EXPECT_LT(secs, 90.0) << "the surviving rank was left waiting";
  fs::remove_all(dir);
}
#else
TEST(DriversMpi, SkippedWithoutMpi) { GTEST_SKIP() << "tessera was built without MPI (apt-get install libopenmpi-dev openmpi-bin)"; }
#endif

// Masks with a "void" label at object borders (PASCAL VOC's 255): an Error that names
// --ignore-label, unless it is given; then those pixels are left out (and counted).
TEST(Drivers, TrainUnetLeavesAnIgnoredLabelOutOnlyWhenAsked) {
  const fs::path dir = scratch("ignore");
  fs::create_directories(dir / "data" / "images");
  fs::create_directories(dir / "data" / "masks");
  for (int i = 0; i < 10; ++i) {
    const std::string name = "im" + std::to_string(i) + ".png";
    write_png((dir / "data" / "images" / name).string(), rand({1, 64, 64}));
    Tensor mask = zeros({64, 64}, kUInt8);
    mask.narrow(0, 16, 24).narrow(1, 16, 24).fill_(1.0);
    mask.narrow(0, 15, 1).narrow(1, 16, 24).fill_(255.0);  // 24 void pixels above the object
    write_png((dir / "data" / "masks" / name).string(), mask);
  }
  const std::string base = kTrain + " --data " + quoted(dir / "data") +
                           " --width 4 --depth 2 --tile 92 --iters 2 --val-every 2 --log-every 1 --workers 1 --threads 1";
  Result r = run(base + " --out " + quoted(dir / "a"), dir);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("mask value 255 is outside [0, 2)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--ignore-label"), std::string::npos) << r.output;
  r = run(base + " --ignore-label 255 --out " + quoted(dir / "b"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(24 pixels of label 255 left out)"), std::string::npos) << r.output;  // one held-out image
  std::ifstream metrics(dir / "b" / "metrics.jsonl");
  std::string line;
  int validations = 0;
  while (std::getline(metrics, line)) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("val_iou")) continue;
    ++validations;
    EXPECT_EQ(j["val_ignored_pixels"].get<double>(), 24.0);
    EXPECT_TRUE(std::isfinite(j["val_pixel_error"].get<double>()));
  }
  EXPECT_EQ(validations, 1);
  fs::remove_all(dir);
}

TEST(Drivers, BadInputGivesAClearErrorAndExitCodeOne) {
  const fs::path dir = scratch("bad");
  // A tile the network cannot take: the message names the nearest valid tiles.
  Result r = run(kTrain + kSmallRun + " --tile 90 --out " + quoted(dir / "run"), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("92"), std::string::npos) << r.output;
  // An output folder inside a file: a std::filesystem error, not a tessera::Error; still one line
  // and exit code 1 (it used to abort).
  std::ofstream(dir / "a_file") << "x";
  r = run(kTrain + kSmallRun + " --out " + quoted(dir / "a_file" / "run"), dir);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
  // An unknown option.
  r = run(kTrain + " --bogus 1", dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("bogus"), std::string::npos) << r.output;
  // A corrupt model file.
  {
    std::ofstream bad(dir / "bad.safetensors", std::ios::binary);
    bad << "not a safetensors file";
  }
  r = run(kPredict + " unet --model " + quoted(dir / "bad.safetensors") + " --out " + quoted(dir / "p") + " x.png", dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("bad.safetensors"), std::string::npos) << r.output;
  // An unknown norm; anchor sizes that are not numbers, not five, or not positive; bad --steps.
  r = run(kTrainMaskRCNN + " --iters 1 --norm layer --out " + quoted(dir / "m"), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("--norm must be"), std::string::npos) << r.output;
  const std::pair<const char*, const char*> bad_lists[] = {{"--anchor-sizes 16,32,x,128,256", "--anchor-sizes must be"},
                                                           {"--anchor-sizes 16,32,64", "anchor_sizes needs one size per FPN level"},
                                                           {"--anchor-sizes 16,32,0,128,256", "anchor sizes must be positive"},
                                                           {"--steps 0.5,,0.9", "--steps must be"},
                                                           {"--detections-per-image 0", "detections_per_img must be at least 1"}};
  for (const auto& [option, message] : bad_lists) {
    r = run(kTrainMaskRCNN + " --iters 1 " + option + " --out " + quoted(dir / "m"), dir);
    EXPECT_EQ(r.code, 1) << option;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
  }
  // Fewer training images than one batch (Mask R-CNN drops the last partial batch): an epoch
  // without a batch once ended in an empty std::optional dereferenced.
  r = run(kTrainMaskRCNN + " --iters 1 --train-images 1 --batch 2 --out " + quoted(dir / "m"), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("fewer than --batch"), std::string::npos) << r.output;
  // An unknown mode, and a missing image.
  r = run(kPredict + " resnet", dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("unknown mode"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

// The U-Net paper's data layouts end to end: a generated Cell Tracking Challenge sequence (16-bit
// TIFF frames, man_seg instance masks for some frames only) and a generated ISBI 2012 stack pair,
// each trained on, predicted (TIFF out) and evaluated with the challenge's measures, which must
// equal the measures recomputed here from the files the programs wrote.
TEST(Drivers, CtcSequenceTrainsPredictsAndScoresSeg) {
  const fs::path dir = scratch("ctc");
  fs::create_directories(dir / "01");
  fs::create_directories(dir / "01_GT" / "SEG");
  const SyntheticCells cells(6, 31, 80, 80);
  std::vector<int64_t> annotated{0, 2, 3, 5};
  for (int64_t t = 0; t < 6; ++t) {
    const Sample s = cells.get(t);
    char name[32];
    std::snprintf(name, sizeof name, "t%03lld.tif", (long long)t);
    write_tiff((dir / "01" / name).string(), add(mul(s.image.select(0, 0), 65535.0), 0.5).to(kInt64));  // 16-bit frames
    if (std::find(annotated.begin(), annotated.end(), t) == annotated.end()) continue;
    std::snprintf(name, sizeof name, "man_seg%03lld.tif", (long long)t);
    write_tiff((dir / "01_GT" / "SEG" / name).string(), s.instances);
  }
  Result r = run(kTrain + " --data " + quoted(dir / "01") + " --width 4 --depth 2 --tile 92 --iters 4 --val-every 4 --log-every 2 --workers 1 --threads 1 --out " + quoted(dir / "run"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("3 training / 1 validation images"), std::string::npos) << r.output;  // the 4 annotated frames
  EXPECT_NE(r.output.find("challenges: CTC SEG "), std::string::npos) << r.output;
  r = run(kPredict + " unet --tiff --model " + quoted(dir / "run" / "model.safetensors") + " --out " + quoted(dir / "res") + " " + quoted(dir / "01"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_TRUE(fs::exists(dir / "res" / "t005_instances.tif")) << r.output;
  ASSERT_TRUE(fs::exists(dir / "res" / "t005_prob.tif")) << r.output;
  r = run(kEvaluate + " unet --gt " + quoted(dir / "01_GT") + " --pred " + quoted(dir / "res") + " --out " + quoted(dir / "ctc.json"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("SEG "), std::string::npos) << r.output;
  std::vector<Tensor> ref, pred;
  for (int64_t t : annotated) {
    char a[32], b[32];
    std::snprintf(a, sizeof a, "man_seg%03lld.tif", (long long)t);
    std::snprintf(b, sizeof b, "t%03lld_instances.tif", (long long)t);
    ref.push_back(read_label_image((dir / "01_GT" / "SEG" / a).string()));
    pred.push_back(read_label_image((dir / "res" / b).string()));
    EXPECT_EQ(ref.back().shape(), pred.back().shape());
  }
  const CtcScores want = ctc_scores(ref, pred);
  std::ifstream in(dir / "ctc.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_DOUBLE_EQ(j["seg"].get<double>(), want.seg);
  EXPECT_DOUBLE_EQ(j["det"].get<double>(), want.det);
  EXPECT_EQ(j["references"].get<double>(), static_cast<double>(want.references));
  EXPECT_GT(want.references, 8);
  // A folder of instance masks named as the images (the Data Science Bowl's layout) pairs by stem.
  fs::create_directories(dir / "masks");
  fs::copy_file(dir / "01_GT" / "SEG" / "man_seg000.tif", dir / "masks" / "t000.tif");
  fs::copy_file(dir / "01_GT" / "SEG" / "man_seg002.tif", dir / "masks" / "t002.tif");
  r = run(kEvaluate + " unet --gt " + quoted(dir / "masks") + " --pred " + quoted(dir / "res") + " --out " + quoted(dir / "dsb.json"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in2(dir / "dsb.json");
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(in2)["seg"].get<double>(), ctc_scores({ref[0], ref[1]}, {pred[0], pred[1]}).seg);
  // A missing prediction is named.
  fs::remove(dir / "res" / "t003_instances.tif");
  r = run(kEvaluate + " unet --gt " + quoted(dir / "01_GT") + " --pred " + quoted(dir / "res"), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("no prediction for frame 3"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

TEST(Drivers, IsbiStacksTrainPredictAndScoreTheChallengeMeasures) {
  const fs::path dir = scratch("isbi");
  const SyntheticCells cells(5, 77, 80, 80);
  std::vector<Tensor> volume, labels;
  for (int64_t i = 0; i < 5; ++i) {
    const Sample s = cells.get(i);
    volume.push_back(add(mul(s.image.select(0, 0), 255.0), 0.5).to(kUInt8));
    labels.push_back(mul(s.mask, 255).to(kUInt8));  // 0 = membrane, 255 = cell
  }
  write_tiff((dir / "train-volume.tif").string(), stack(volume));
  write_tiff((dir / "train-labels.tif").string(), stack(labels));
  Result r = run(kTrain + " --data-volume " + quoted(dir / "train-volume.tif") + " --data-labels " + quoted(dir / "train-labels.tif") +
                     " --width 4 --depth 2 --tile 92 --iters 4 --val-every 4 --log-every 2 --workers 1 --threads 1 --out " + quoted(dir / "run"),
                 dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("4 training / 1 validation images"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ISBI V_Rand "), std::string::npos) << r.output;
  r = run(kPredict + " unet --model " + quoted(dir / "run" / "model.safetensors") + " --out " + quoted(dir / "res") + " " + quoted(dir / "train-volume.tif"), dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "res" / "train-volume_004_overlay.png")) << r.output;
  const Tensor prob = read_image_stack((dir / "res" / "train-volume_prob.tif").string());
  ASSERT_EQ(prob.shape(), (Shape{5, 1, 80, 80}));
  r = run(kEvaluate + " unet --gt " + quoted(dir / "train-labels.tif") + " --pred " + quoted(dir / "res" / "train-volume_prob.tif") + " --out " +
              quoted(dir / "isbi.json"),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("V_Rand "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("warping error "), std::string::npos) << r.output;
  const IsbiScores want = isbi_scores(read_label_stack((dir / "train-labels.tif").string()), prob.select(1, 0));
  std::ifstream in(dir / "isbi.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_DOUBLE_EQ(j["v_rand"].get<double>(), want.v_rand);
  EXPECT_DOUBLE_EQ(j["v_info"].get<double>(), want.v_info);
  EXPECT_DOUBLE_EQ(j["warping_error"].get<double>(), want.warping_error);
  EXPECT_DOUBLE_EQ(j["pixel_error"].get<double>(), want.pixel_error);
  // Stacks that disagree are refused with both names.
  write_tiff((dir / "short-labels.tif").string(), stack({labels[0], labels[1]}));
  r = run(kTrain + " --data-volume " + quoted(dir / "train-volume.tif") + " --data-labels " + quoted(dir / "short-labels.tif") + " --iters 1 --out " +
              quoted(dir / "bad"),
          dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("short-labels.tif"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tessera
