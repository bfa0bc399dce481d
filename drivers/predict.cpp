// predict: runs a trained model on images.
//   predict maskrcnn --model runs/maskrcnn/model.safetensors --out DIR image.png [...]
//     writes <name>_detections.png (masks, boxes, class names and scores over the image) and
//     DIR/results.json (the detections in the COCO results format; image_id = the image's position
//     on the command line, from 1).
//   predict unet --model runs/unet/model.safetensors --out DIR image.png [...]
//     writes <name>_labels.png (class labels, scaled to 0..255), <name>_prob.png (the probability
//     of the last class, e.g. "cell"), <name>_overlay.png (the image with the predicted foreground
//     tinted), using the overlap-tile strategy with mirrored borders.
#include <cstdio>
#include <filesystem>

#include "core/safetensors.h"
#include "data/image.h"
#include "drivers/args.h"
#include "drivers/common.h"
#include "drivers/draw.h"
#include "eval/coco_eval.h"
#include "optim/checkpoint.h"
#include "tessera.h"

namespace fs = std::filesystem;
using namespace tessera;

namespace {

int run_unet(const cli::Args& args, const std::vector<std::string>& images) {
  TS_CHECK(args.has("model"), "predict unet: --model is required (a model.safetensors written by train_unet)");
  const std::string model_path = args.str("model");
  SafetensorsFile f = load_safetensors(model_path);
  UNetOptions o = driver::unet_options_from(f.metadata, model_path);
  o.dropout = 0.0;
  UNet net(o);
  net.load_state_dict(f.tensors);
  const Device dev(args.str("device"));
  TS_CHECK(!dev.is_cuda() || cuda::is_available(), "predict: --device ", dev, " but CUDA is unavailable: ", cuda::unavailable_reason());
  net.to(dev);
  net.eval();
  int64_t out_tile = 0;
  if (args.has("tile")) {
    out_tile = args.integer("tile");
    net.input_size_for_output(out_tile);  // an Error naming the nearest valid tiles
  } else {
    auto it = f.metadata.find("unet.tile");
    out_tile = net.output_size(it != f.metadata.end() ? std::stoll(it->second) : net.nearest_valid_input(572));
  }
  const fs::path out = args.str("out");
  fs::create_directories(out);
  TS_CHECK(!images.empty(), "predict unet: give one or more image files");
  for (const std::string& path : images) {
    Tensor image = read_image(path, static_cast<int>(o.in_channels));
    Tensor logits = predict_tiled(net, image.to(dev), out_tile);
    Tensor labels = argmax(logits, 1).squeeze(0).cpu();
    Tensor prob = softmax(logits, 1).select(0, 0).narrow(0, o.num_classes - 1, 1).cpu();
    const std::string stem = (out / fs::path(path).stem()).string();
    write_png(stem + "_labels.png", driver::label_image(labels, o.num_classes));
    write_png(stem + "_prob.png", prob);
    write_png(stem + "_overlay.png", driver::overlay(image, labels));
    std::printf("%s: %lld x %lld, foreground %.1f%% -> %s_{labels,prob,overlay}.png\n", path.c_str(), (long long)image.size(1),
                (long long)image.size(2), 100.0 * mean(gt(labels, 0.0).to(kFloat32)).item<float>(), stem.c_str());
  }
  return 0;
}

int run_maskrcnn(const cli::Args& args, const std::vector<std::string>& images) {
  TS_CHECK(args.has("model"), "predict maskrcnn: --model is required (a model.safetensors written by train_maskrcnn)");
  const std::string model_path = args.str("model");
  SafetensorsFile f = load_safetensors(model_path);
  const driver::MaskRCNNConfig cfg = driver::maskrcnn_config_from(f.metadata, model_path);
  MaskRCNNOptions o = cfg.options;
  o.roi_heads.score_thresh = std::min(o.roi_heads.score_thresh, args.number("score-threshold"));
  o.roi_heads.detections_per_img = args.integer("detections-per-image");  // RoIHeads checks it
  MaskRCNN net(o);
  net.load_state_dict(f.tensors);
  const Device dev(args.str("device"));
  TS_CHECK(!dev.is_cuda() || cuda::is_available(), "predict: --device ", dev, " but CUDA is unavailable: ", cuda::unavailable_reason());
  net.to(dev);
  net.eval();
  const fs::path out = args.str("out");
  fs::create_directories(out);
  TS_CHECK(!images.empty(), "predict maskrcnn: give one or more image files");
  std::vector<CocoResult> results;
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string& path = images[i];
    const Tensor image = read_image(path, 3);
    const Detections d = net.detect({image.to(dev)}).front();
    const Detections host{d.boxes.cpu(), d.scores.cpu(), d.labels.cpu(), d.masks.cpu()};
    int64_t shown = 0;
    for (float s : host.scores.to_vector<float>()) shown += s >= args.number("score-threshold");
    for (CocoResult& r : detections_to_coco(host, static_cast<int64_t>(i) + 1, cfg.category_ids))
      if (r.score >= args.number("score-threshold")) results.push_back(std::move(r));
    const std::string stem = (out / fs::path(path).stem()).string();
    write_png(stem + "_detections.png", driver::draw_detections(image, host, cfg.class_names, args.number("score-threshold")));
    std::printf("%s: %lld x %lld, %lld detections with score >= %.2f -> %s_detections.png\n", path.c_str(), (long long)image.size(1),
                (long long)image.size(2), (long long)shown, args.number("score-threshold"), stem.c_str());
  }
  save_coco_results((out / "results.json").string(), results);
  std::printf("%zu detections -> %s\n", results.size(), (out / "results.json").string().c_str());
  return 0;
}

int run(int argc, char** argv) {
  cli::Args args("predict", "Run a trained model on images: predict maskrcnn|unet --model M.safetensors --out DIR images...");
  args.option("model", "", "model file written by a training driver (safetensors with its configuration)")
      .option("tile", "", "U-Net output tile size (default: the training tile's output)")
      .option("score-threshold", "0.5", "Mask R-CNN: draw and report detections scoring at least this")
      .option("detections-per-image", "100", "Mask R-CNN: keep at most this many detections per image (torchvision's box_detections_per_img)")
      .option("device", "cpu", "cpu or cuda[:N]")
      .option("threads", "", "CPU threads")
      .option("out", "predictions", "output folder");
  args.parse(argc, argv);
  if (args.has("threads")) set_num_threads(static_cast<int>(args.integer("threads")));
  TS_CHECK(!args.positional().empty(), "predict: the first argument is the mode: maskrcnn or unet (see --help)");
  const std::string mode = args.positional().front();
  const std::vector<std::string> images(args.positional().begin() + 1, args.positional().end());
  if (mode == "unet") return run_unet(args, images);
  if (mode == "maskrcnn") return run_maskrcnn(args, images);
  TS_ERROR("predict: unknown mode '", mode, "' (available: maskrcnn, unet)");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // tessera::Error, and std::bad_alloc, filesystem errors, ...
    return tessera::driver::fail(e.what());
  } catch (...) {
    return tessera::driver::fail("an unexpected exception");
  }
}
