// Shared by the drivers: pictures a person wants to look at (side-by-side panels, overlays),
// metrics as JSON lines, the models' configurations stored in model-file metadata, and the
// scaffolding of main() and of the training loops (options, set-up, resume, batches, the clock).
#pragma once

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/loader.h"
#include "drivers/args.h"
#include "models/mask_rcnn.h"
#include "autograd/autocast.h"
#include "models/unet.h"
#include "optim/grad_scaler.h"
#include "optim/optimizer.h"

namespace tessera::driver {

// Grayscale or RGB images [C, H, W] in [0, 1] (or label maps [H, W], scaled to their range) side by
// side, padded to one height, as one RGB image.
Tensor panel(const std::vector<Tensor>& images);
// Grayscale/RGB image [C, H, W] with a coloured, half-transparent mask [H, W] (nonzero) on top.
Tensor overlay(const Tensor& image, const Tensor& mask, std::vector<float> rgb = {1.f, 0.15f, 0.1f}, float alpha = 0.45f);
// Label map [H, W] (int) as a viewable [1, H, W] float image: label / max(1, num_classes - 1).
Tensor label_image(const Tensor& labels, int64_t num_classes);

// Appends one JSON object per line, flushed at once (a crash keeps every line written before it).
class JsonLines {
 public:
  // An empty path: writes nothing (ranks other than 0 of a data-parallel run).
  explicit JsonLines(const std::string& path, bool append = false);
  void write(const std::map<std::string, double>& values, const std::map<std::string, std::string>& text = {});

 private:
  std::ofstream out_;
  std::string path_;
};

// Writes one JSON object to `path` atomically (results files: a crash leaves the old one intact).
void write_json(const std::string& path, const std::map<std::string, double>& values,
                const std::map<std::string, std::string>& text = {});

// Training under mpirun: the world this process is in (a world of one when not launched by MPI).
struct World {
  bool distributed = false;
  int rank = 0, size = 1;
  bool main() const { return rank == 0; }  // the rank that prints and writes files
};
World join_world();
// This rank's device from --device: "cuda" under mpirun with several ranks is cuda:<local rank>
// (one GPU per rank, the NCCL rule); "cuda:N" is taken as given; an Error when CUDA is missing or
// the machine has fewer GPUs than ranks on it. `program` names the driver in the message.
Device rank_device(const std::string& spec, const World& world, const std::string& program);
// main()'s error path: "error: <what>" and exit code 1; under mpirun every rank is stopped at once
// (MPI_Abort), with this rank named, instead of the others waiting for it.
int fail(const std::string& what);
// A driver's main(): returns run(argc, argv); any exception (tessera::Error, std::bad_alloc, a
// filesystem error, ...) goes to fail(), so every driver ends with one clear line and status 1.
int guarded_main(int argc, char** argv, int (*run)(int, char**));

// The options every training driver has: --verbose, --log-every, --save-every, --workers,
// --device, --threads, --seed, --out (default `out_dir`), --resume and --precision.
void add_training_options(cli::Args& args, const std::string& out_dir, int64_t log_every);
// What those options set up, once parsed: the CPU threads (--threads), the MPI world (under
// mpirun), this rank's device (rank_device) and the global seed (manual_seed(--seed)).
// --precision fp32|bf16|fp16: float32, or autocast to bfloat16 / float16 on the run's device
// (autograd/autocast.h; float16 training adds a GradScaler). Parameters stay float32.
struct Precision {
  std::string name = "fp32";
  std::optional<DType> low;  // unset for fp32
  // Starts autocast for `device` in g (the caller's scope) when low is set:
  //   std::optional<AutocastGuard> amp; precision.enter(amp, dev);
  void enter(std::optional<AutocastGuard>& g, const Device& device) const {
    if (low) g.emplace(*low, device.type);
  }
};
// Adds --precision to a program that is not a training driver (predict).
void add_precision_option(cli::Args& args);
Precision parse_precision(const cli::Args& args);
void add_loss_scale_option(cli::Args& args);
// The GradScaler of a training driver: on for fp16, from --loss-scale.
GradScalerOptions scaler_options(const cli::Args& args, const Precision& precision);

struct TrainingSetup {
  World world;
  Device device;
  uint64_t seed = 0;
  Precision precision;
};
TrainingSetup start_training(const cli::Args& args, const std::string& program);
// The step to start from: 0, or the step of the --resume checkpoint, loaded into model and
// optimizer (rank 0 says so).
int64_t resume_step(const cli::Args& args, Module& model, Optimizer& opt, const World& world, GradScaler* scaler = nullptr);
// Rank 0, under mpirun: one line on the global batch.
void print_data_parallel(const World& world, int64_t batch, double lr);
// The next batch, starting the next epoch when this one is over.
std::vector<Sample> next_batch(DataLoader& loader, int64_t& epoch);

// Wall-clock time since construction, and the estimate of progress lines.
class Clock {
 public:
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
  // Seconds still to go when `done` steps took seconds() and `left` remain.
  double eta(int64_t done, int64_t left) const {
    return done > 0 ? static_cast<double>(left) * seconds() / static_cast<double>(done) : 0.0;
  }

 private:
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// "cpu gemm: OpenBLAS <family> kernels (<who chose them>), <path>": the --verbose line saying which
// CPU kernels the matrix products and convolutions run.
std::string kernels_line();

// The allocator's state on `dev`, for --verbose progress lines: the CUDA caching allocator's
// summary (allocated, reserved, peak, segments, cudaMalloc calls, splits, merges), or the CPU
// cache's counters.
std::string memory_line(const Device& dev);

std::map<std::string, std::string> unet_metadata(const UNetOptions& o);
UNetOptions unet_options_from(const std::map<std::string, std::string>& metadata, const std::string& file);

// Mask R-CNN's configuration and class names in a model file's metadata ("model": "maskrcnn").
struct MaskRCNNConfig {
  MaskRCNNOptions options;
  std::vector<std::string> class_names;   // [0] = "background"
  std::vector<int64_t> category_ids;     // COCO category id of each label ([0] unused)
};
std::map<std::string, std::string> maskrcnn_metadata(const MaskRCNNConfig& c);
MaskRCNNConfig maskrcnn_config_from(const std::map<std::string, std::string>& metadata, const std::string& file);
// "0.67,0.89" -> {0.67, 0.89}: a comma-separated list of numbers; `what` names the source in errors.
// join_numbers writes such a list back (17 significant digits: it reads back exactly).
std::vector<double> parse_numbers(const std::string& text, const std::string& what);
std::string join_numbers(const std::vector<double>& values);

// Loads a checkpoint for fine-tuning or evaluation: a tessera or torchvision Mask R-CNN state_dict
// (keys "backbone.", "rpn.", "roi_heads.") or a torchvision ResNet classifier's ("conv1.",
// "layer1.", ...: into the backbone body). Tensors whose shape differs (e.g. a 91-class predictor
// for a 4-class model) are left as initialised. Prints what was loaded and what was skipped.
void load_detection_weights(MaskRCNN& model, const std::string& path);

}  // namespace tessera::driver
