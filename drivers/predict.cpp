// predict: runs a trained model on images.
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

int run(int argc, char** argv) {
  cli::Args args("predict", "Run a trained model on images: predict unet --model M.safetensors --out DIR images...");
  args.option("model", "", "model file written by a training driver (safetensors with its configuration)")
      .option("tile", "", "U-Net output tile size (default: the training tile's output)")
      .option("device", "cpu", "cpu or cuda[:N]")
      .option("threads", "", "CPU threads")
      .option("out", "predictions", "output folder");
  args.parse(argc, argv);
  if (args.has("threads")) set_num_threads(static_cast<int>(args.integer("threads")));
  TS_CHECK(!args.positional().empty(), "predict: the first argument is the mode: unet (see --help)");
  const std::string mode = args.positional().front();
  const std::vector<std::string> images(args.positional().begin() + 1, args.positional().end());
  if (mode == "unet") return run_unet(args, images);
  TS_ERROR("predict: unknown mode '", mode, "' (available: unet)");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const tessera::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
