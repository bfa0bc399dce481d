// predict: runs a trained model on images: files, folders (their image files, by name) and glob
// patterns ('data/*.png', quoted so that the shell leaves it), in batches of --batch images.
//   predict maskrcnn --model runs/maskrcnn/model.safetensors --out DIR images... [--batch N]
//     writes <name>_detections.png (masks, boxes, class names and scores over the image).
//   predict unet --model runs/unet/model.safetensors --out DIR images... [--batch N]
//     writes <name>_labels.png (class labels, scaled to 0..255), <name>_prob.png (the probability
//     of the last class, e.g. "cell"), <name>_overlay.png (the image with the predicted foreground
//     tinted), using the overlap-tile strategy with mirrored borders.
// Both write DIR/results.json (COCO results: Mask R-CNN's detections; for the U-Net, each
// connected component of a predicted class, scored by its mean probability) and DIR/images.json
// (COCO's "images": id = position in the input list from 1, file_name, height, width), and print
// progress with images/s. Mask R-CNN batches pad the images to a common size, as torchvision does
// (images of one size are unaffected); U-Net batches stack consecutive images of one size.
#include <glob.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "core/safetensors.h"
#include "data/coco_mask.h"
#include "data/image.h"
#include "data/tiff.h"
#include "eval/challenges.h"
#include "drivers/args.h"
#include "drivers/common.h"
#include "drivers/draw.h"
#include "eval/coco_eval.h"
#include "eval/segmentation.h"
#include "optim/checkpoint.h"
#include "tessera.h"

namespace fs = std::filesystem;
using namespace tessera;

namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* e : {".png", ".jpg", ".jpeg", ".bmp", ".tga", ".gif", ".pgm", ".ppm", ".pnm", ".tif", ".tiff"})
    if (ext == e) return true;
  return false;
}

// The positional arguments as image files: a file as given, a folder's image files by name, a
// pattern's matches by name. A folder without images or a pattern without matches is an Error.
std::vector<std::string> expand_inputs(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const std::string& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      std::vector<std::string> found;
      for (const fs::directory_entry& e : fs::directory_iterator(a))
        if (e.is_regular_file() && is_image_file(e.path())) found.push_back(e.path().string());
      TS_CHECK(!found.empty(), "predict: the folder '", a, "' has no image files (png, jpg, bmp, tga, gif, pnm, tif)");
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (!fs::exists(a, ec) && a.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      const int rc = ::glob(a.c_str(), 0, nullptr, &g);
      std::vector<std::string> found;
      if (rc == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i)
          if (fs::is_regular_file(g.gl_pathv[i], ec)) found.push_back(g.gl_pathv[i]);
      globfree(&g);
      TS_CHECK(!found.empty(), "predict: no file matches '", a, "'");
      out.insert(out.end(), found.begin(), found.end());  // glob() sorts
    } else {
      out.push_back(a);  // read_image names it if it is missing
    }
  }
  return out;
}

// "[ 12/120] 3.4 img/s | elapsed 0:04 | eta 0:32" after each batch.
class Progress {
 public:
  explicit Progress(size_t total) : total_(total) {}
  void done(size_t n) {
    const double secs = clock_.seconds();
    const int width = static_cast<int>(std::to_string(total_).size());
    std::printf("[%*zu/%zu] %.2f img/s | elapsed %s | eta %s\n", width, n, total_, static_cast<double>(n) / std::max(secs, 1e-9),
                cli::format_duration(secs).c_str(),
                cli::format_duration(clock_.eta(static_cast<int64_t>(n), static_cast<int64_t>(total_ - n))).c_str());
    std::fflush(stdout);
  }
  double seconds() const { return clock_.seconds(); }

 private:
  size_t total_;
  driver::Clock clock_;
};

// COCO's "images" for the inputs (ids from 1 in input order), written atomically.
void save_images_json(const fs::path& path, const std::vector<std::string>& files, const std::vector<std::pair<int64_t, int64_t>>& sizes) {
  nlohmann::json images = nlohmann::json::array();
  for (size_t i = 0; i < files.size(); ++i)
    images.push_back({{"id", static_cast<int64_t>(i) + 1}, {"file_name", files[i]}, {"height", sizes[i].first}, {"width", sizes[i].second}});
  write_file_atomic(path.string(), [&](std::ostream& os) { os << nlohmann::json{{"images", images}}.dump(1) << "\n"; });
}

// The U-Net's instances as COCO results: each 8-connected component of each predicted class
// c >= 1, category c, scored by the mean probability of c over its pixels.
std::vector<CocoResult> unet_instances(const Tensor& labels, const Tensor& probs, int64_t image_id) {
  const int64_t H = labels.size(0), W = labels.size(1), C = probs.size(0);
  std::vector<CocoResult> out;
  const Tensor p = probs.to(kFloat64).contiguous();
  for (int64_t c = 1; c < C; ++c) {
    int64_t n = 0;
    const Tensor comp = connected_components(eq(labels, static_cast<double>(c)), &n).contiguous();
    if (n == 0) continue;
    const int64_t* id = comp.data<int64_t>();
    const double* pc = p.data<double>() + c * H * W;
    std::vector<double> score(static_cast<size_t>(n), 0.0);
    std::vector<int64_t> area(static_cast<size_t>(n), 0), x0(static_cast<size_t>(n), W), y0(static_cast<size_t>(n), H),
        x1(static_cast<size_t>(n), -1), y1(static_cast<size_t>(n), -1);
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const int64_t k = id[y * W + x] - 1;
        if (k < 0) continue;
        const size_t u = static_cast<size_t>(k);
        score[u] += pc[y * W + x];
        ++area[u];
        x0[u] = std::min(x0[u], x), y0[u] = std::min(y0[u], y), x1[u] = std::max(x1[u], x), y1[u] = std::max(y1[u], y);
      }
    for (int64_t k = 0; k < n; ++k) {
      const size_t u = static_cast<size_t>(k);
      CocoResult r;
      r.image_id = image_id;
      r.category_id = c;
      r.score = score[u] / static_cast<double>(area[u]);
      r.bbox = {static_cast<double>(x0[u]), static_cast<double>(y0[u]), static_cast<double>(x1[u] - x0[u] + 1),
                static_cast<double>(y1[u] - y0[u] + 1)};
      r.has_bbox = true;
      r.rle = coco::rle_encode(eq(comp, static_cast<double>(k + 1)));
      r.height = H;
      r.width = W;
      r.has_segmentation = true;
      out.push_back(std::move(r));
    }
  }
  return out;
}

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
  const driver::Precision precision = driver::parse_precision(args);  // the weights stay float32
  std::optional<AutocastGuard> amp;
  precision.enter(amp, dev);
  if (precision.low) std::printf("inference with autocast to %s\n", dtype_name(*precision.low));
  int64_t out_tile = 0;
  if (args.has("tile")) {
    out_tile = args.integer("tile");
    net.input_size_for_output(out_tile);  // an Error naming the nearest valid tiles
  } else {
    auto it = f.metadata.find("unet.tile");
    out_tile = net.output_size(it != f.metadata.end() ? std::stoll(it->second) : net.nearest_valid_input(572));
  }
  const int64_t batch = args.integer("batch");
  TS_CHECK(batch >= 1, "predict: --batch must be at least 1, got ", batch);
  const fs::path out = args.str("out");
  fs::create_directories(out);
  TS_CHECK(!images.empty(), "predict unet: give one or more image files, folders or patterns");
  const bool tiff_out = args.has("tiff");
  std::vector<CocoResult> results;
  std::vector<std::string> names;  // one per page: the file, or "file [page k]" for a stack's pages
  std::vector<std::pair<int64_t, int64_t>> sizes;
  // A stack's pages (a multi-page TIFF: ISBI's volumes) are predicted one by one, each a page of
  // <stem>_prob.tif and <stem>_instances.tif; one-page files may share a batch.
  struct Pending {
    size_t file;
    int64_t page, pages;
    Tensor image;
  };
  struct StackOut {
    std::vector<Tensor> prob, instances;
  };
  std::map<size_t, StackOut> stacks;
  std::vector<Pending> pending;
  Progress progress(images.size());
  size_t files_done = 0;
  auto flush = [&]() {
    if (pending.empty()) return;
    std::vector<Tensor> xs;
    for (const Pending& p : pending) xs.push_back(p.image);
    const Tensor logits = predict_tiled(net, stack(xs, 0).to(dev), out_tile);
    const Tensor labels_all = argmax(logits, 1).cpu(), probs_all = softmax(logits, 1).cpu();
    for (size_t b = 0; b < pending.size(); ++b) {
      const Pending& p = pending[b];
      const Tensor& image = p.image;
      const Tensor labels = labels_all.select(0, static_cast<int64_t>(b)), probs = probs_all.select(0, static_cast<int64_t>(b));
      const Tensor prob = probs.select(0, o.num_classes - 1).contiguous();
      std::string stem = (out / fs::path(images[p.file]).stem()).string();
      const std::string base = stem;
      if (p.pages > 1) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "_%03lld", (long long)p.page);
        stem += buf;
      }
      write_png(stem + "_labels.png", driver::label_image(labels, o.num_classes));
      write_png(stem + "_prob.png", prob.unsqueeze(0));
      write_png(stem + "_overlay.png", driver::overlay(image, labels));
      names.push_back(p.pages > 1 ? images[p.file] + " [page " + std::to_string(p.page) + "]" : images[p.file]);
      for (CocoResult& r : unet_instances(labels, probs, static_cast<int64_t>(names.size()))) results.push_back(std::move(r));
      sizes.emplace_back(image.size(1), image.size(2));
      std::printf("%s: %lld x %lld, foreground %.1f%% -> %s_{labels,prob,overlay}.png\n", names.back().c_str(), (long long)image.size(1),
                  (long long)image.size(2), 100.0 * mean(gt(labels, 0.0).to(kFloat32)).item<float>(), stem.c_str());
      if (tiff_out || p.pages > 1) {
        StackOut& so = stacks[p.file];
        so.prob.push_back(prob);
        so.instances.push_back(connected_components(gt(labels, 0.0), nullptr, 4));  // only when a TIFF is written
        if (static_cast<int64_t>(so.prob.size()) == p.pages) {
          write_tiff(base + "_prob.tif", stack(so.prob, 0));
          write_tiff(base + "_instances.tif", stack(so.instances, 0));
          std::printf("  -> %s_prob.tif (float32 probability of class %lld) and %s_instances.tif (16-bit 4-connected instances)%s\n",
                      base.c_str(), (long long)(o.num_classes - 1), base.c_str(), p.pages > 1 ? (", " + std::to_string(p.pages) + " pages").c_str() : "");
          stacks.erase(p.file);
        }
      }
      if (p.page + 1 == p.pages) progress.done(++files_done);
    }
    pending.clear();
  };
  for (size_t i = 0; i < images.size(); ++i) {
    const Tensor pages = read_image_stack(images[i], static_cast<int>(o.in_channels));
    const int64_t n = pages.size(0);
    for (int64_t k = 0; k < n; ++k) {
      const Tensor image = pages.select(0, k).contiguous();
      if (!pending.empty() && (static_cast<int64_t>(pending.size()) >= batch || image.shape() != pending.front().image.shape())) flush();
      pending.push_back({i, k, n, image});
    }
    if (n > 1) flush();  // a stack's pages are a batch of their own
  }
  flush();
  save_coco_results((out / "results.json").string(), results);
  save_images_json(out / "images.json", names, sizes);
  std::printf("%zu images in %.1f s (%.2f img/s); %zu instances -> %s, images.json\n", names.size(), progress.seconds(),
              static_cast<double>(names.size()) / std::max(progress.seconds(), 1e-9), results.size(),
              (out / "results.json").string().c_str());
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
  const driver::Precision precision = driver::parse_precision(args);  // the weights stay float32
  std::optional<AutocastGuard> amp;
  precision.enter(amp, dev);
  if (precision.low) std::printf("inference with autocast to %s\n", dtype_name(*precision.low));
  const int64_t batch = args.integer("batch");
  TS_CHECK(batch >= 1, "predict: --batch must be at least 1, got ", batch);
  const fs::path out = args.str("out");
  fs::create_directories(out);
  TS_CHECK(!images.empty(), "predict maskrcnn: give one or more image files, folders or patterns");
  const double threshold = args.number("score-threshold");
  std::vector<CocoResult> results;
  std::vector<std::pair<int64_t, int64_t>> sizes;
  Progress progress(images.size());
  for (size_t first = 0; first < images.size(); first += static_cast<size_t>(batch)) {
    const size_t n = std::min(images.size() - first, static_cast<size_t>(batch));
    std::vector<Tensor> host_images, device_images;
    for (size_t b = 0; b < n; ++b) {
      host_images.push_back(read_image(images[first + b], 3));
      device_images.push_back(host_images.back().to(dev));
    }
    const std::vector<Detections> dets = net.detect(device_images);
    for (size_t b = 0; b < n; ++b) {
      const size_t i = first + b;
      const Tensor& image = host_images[b];
      const Detections host{dets[b].boxes.cpu(), dets[b].scores.cpu(), dets[b].labels.cpu(), dets[b].masks.cpu()};
      int64_t shown = 0;
      for (float sc : host.scores.to_vector<float>()) shown += sc >= threshold;
      for (CocoResult& r : detections_to_coco(host, static_cast<int64_t>(i) + 1, cfg.category_ids))
        if (r.score >= threshold) results.push_back(std::move(r));
      const std::string stem = (out / fs::path(images[i]).stem()).string();
      write_png(stem + "_detections.png", driver::draw_detections(image, host, cfg.class_names, threshold));
      sizes.emplace_back(image.size(1), image.size(2));
      std::printf("%s: %lld x %lld, %lld detections with score >= %.2f -> %s_detections.png\n", images[i].c_str(),
                  (long long)image.size(1), (long long)image.size(2), (long long)shown, threshold, stem.c_str());
    }
    progress.done(first + n);
  }
  save_coco_results((out / "results.json").string(), results);
  save_images_json(out / "images.json", images, sizes);
  std::printf("%zu images in %.1f s (%.2f img/s); %zu detections -> %s, images.json\n", images.size(), progress.seconds(),
              static_cast<double>(images.size()) / std::max(progress.seconds(), 1e-9), results.size(),
              (out / "results.json").string().c_str());
  return 0;
}

int run(int argc, char** argv) {
  cli::Args args("predict", "Run a trained model on images: predict maskrcnn|unet --model M.safetensors --out DIR images|folders|'patterns'...");
  args.option("model", "", "model file written by a training driver (safetensors with its configuration)")
      .option("tile", "", "U-Net output tile size (default: the training tile's output)")
      .option("score-threshold", "0.5", "Mask R-CNN: draw and report detections scoring at least this")
      .option("detections-per-image", "100", "Mask R-CNN: keep at most this many detections per image (torchvision's box_detections_per_img)")
      .option("batch", "1", "images per forward pass (Mask R-CNN pads them to a common size, as torchvision does; U-Net: consecutive images of one size)")
      .option("device", "cpu", "cpu or cuda[:N]")
      .option("threads", "", "CPU threads")
      .option("out", "predictions", "output folder")
      .flag("tiff", "U-Net: also write <name>_prob.tif (32-bit float probability of the last class: ISBI's submission format, 1 = cell) and <name>_instances.tif (16-bit instance ids: CTC's format); stacks always get them")
      .flag("verbose", "say which CPU kernels run (OpenBLAS's kernel family and who chose it)");
  driver::add_precision_option(args);
  args.parse(argc, argv);
  if (args.has("threads")) set_num_threads(static_cast<int>(args.integer("threads")));
  if (args.has("verbose")) std::printf("%s\n", driver::kernels_line().c_str());
  TS_CHECK(!args.positional().empty(), "predict: the first argument is the mode: maskrcnn or unet (see --help)");
  const std::string mode = args.positional().front();
  const std::vector<std::string> images = expand_inputs({args.positional().begin() + 1, args.positional().end()});
  if (mode == "unet") return run_unet(args, images);
  if (mode == "maskrcnn") return run_maskrcnn(args, images);
  TS_ERROR("predict: unknown mode '", mode, "' (available: maskrcnn, unet)");
}

}  // namespace

int main(int argc, char** argv) { return tessera::driver::guarded_main(argc, argv, run); }
