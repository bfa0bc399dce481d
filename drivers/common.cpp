// Driver helpers.
#include "drivers/common.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/allocator.h"
#include "core/cuda.h"
#include "core/file_io.h"
#include "distributed/dist.h"
#include "kernels/conv_settings.h"
#include "kernels/cpu/gemm_bf16.h"
#include "core/safetensors.h"
#include "core/view.h"
#include "kernels/matmul.h"
#include "optim/checkpoint.h"

namespace tessera::driver {

namespace {
Tensor as_rgb(const Tensor& t_in) {
  Tensor t = t_in.to(kCPU).to(kFloat32);
  if (t.dim() == 2) t = t.unsqueeze(0);
  TS_CHECK(t.dim() == 3 && (t.size(0) == 1 || t.size(0) == 3), "panel: images must be [1 or 3, H, W] or [H, W]");
  return t.size(0) == 3 ? t : t.expand({3, t.size(1), t.size(2)}).contiguous();
}
}  // namespace

Tensor panel(const std::vector<Tensor>& images) {
  TS_CHECK(!images.empty(), "panel: no images");
  NoGradGuard g;
  int64_t H = 0;
  std::vector<Tensor> rgb;
  for (const Tensor& im : images) {
    rgb.push_back(as_rgb(im));
    H = std::max(H, rgb.back().size(1));
  }
  std::vector<Tensor> columns;
  for (size_t i = 0; i < rgb.size(); ++i) {
    Tensor& t = rgb[i];
    if (t.size(1) < H) t = cat({t, zeros({3, H - t.size(1), t.size(2)})}, 1);
    columns.push_back(t);
    if (i + 1 < rgb.size()) columns.push_back(ones({3, H, 4}));  // a white gutter
  }
  return cat(columns, 2);
}

Tensor overlay(const Tensor& image, const Tensor& mask, std::vector<float> color, float alpha) {
  NoGradGuard g;
  Tensor base = as_rgb(image);
  TS_CHECK(mask.dim() == 2 && mask.size(0) == base.size(1) && mask.size(1) == base.size(2), "overlay: the mask must be [H, W] of the image");
  Tensor on = ne(mask.to(kCPU), 0.0).unsqueeze(0);
  Tensor tint = from_vector<float>(color, {3, 1, 1});
  return where(on, add(mul(base, 1.0 - alpha), mul(tint, alpha)), base);
}

Tensor label_image(const Tensor& labels, int64_t num_classes) {
  NoGradGuard g;
  return div(labels.to(kCPU).to(kFloat32), static_cast<double>(std::max<int64_t>(1, num_classes - 1))).unsqueeze(0);
}

JsonLines::JsonLines(const std::string& path, bool append) : path_(path) {
  if (path.empty()) return;  // a rank that writes nothing
  out_.open(path, append ? std::ios::app : std::ios::trunc);
  TS_CHECK(out_.good(), "cannot open '", path, "' for writing");
}

namespace {
nlohmann::json to_json(const std::map<std::string, double>& values, const std::map<std::string, std::string>& text) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : values) j[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  for (const auto& [k, v] : text) j[k] = v;
  return j;
}
}  // namespace

void write_json(const std::string& path, const std::map<std::string, double>& values,
                const std::map<std::string, std::string>& text) {
  const std::string s = to_json(values, text).dump(2) + "\n";
  write_file_atomic(path, [&](std::ostream& o) { o << s; });
}

void JsonLines::write(const std::map<std::string, double>& values, const std::map<std::string, std::string>& text) {
  if (path_.empty()) return;
  out_ << to_json(values, text).dump() << "\n";
  out_.flush();
  TS_CHECK(out_.good(), "writing '", path_, "' failed");
}

World join_world() {
  World w;
  if (!dist::launched_by_mpi()) return w;
  dist::init();
  w.distributed = true;
  w.rank = dist::rank();
  w.size = dist::world_size();
  return w;
}

Device rank_device(const std::string& spec, const World& world, const std::string& program) {
  Device dev(spec);
  if (!dev.is_cuda()) return dev;
  TS_CHECK(cuda::is_available(), program, ": --device ", spec, " but CUDA is unavailable: ", cuda::unavailable_reason());
  if (world.size > 1 && spec == "cuda") dev = Device(DeviceType::CUDA, dist::local_rank());
  TS_CHECK(dev.index < cuda::device_count(), program, ": rank ", world.rank, " would use cuda:", dev.index, ", but this machine has ",
           cuda::device_count(), " GPU(s); start at most that many ranks per machine");
  return dev;
}

int fail(const std::string& what) {
  if (dist::is_initialized() && dist::world_size() > 1) dist::abort("error: " + what);
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 1;
}

int guarded_main(int argc, char** argv, int (*run)(int, char**)) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("an unexpected exception");
  }
}

void add_training_options(cli::Args& args, const std::string& out_dir, int64_t log_every) {
  args.flag("verbose", "which CPU kernels run, and after each progress line the memory allocator's state (CUDA: allocated, reserved, segments, cudaMalloc calls)")
      .option("log-every", std::to_string(log_every), "progress line every N steps")
      .option("save-every", "500", "checkpoint every N steps (and at the end)")
      .option("workers", "2", "data-loading threads")
      .option("device", "cpu", "cpu or cuda[:N]")
      .option("threads", "", "CPU threads (default: TESSERA_NUM_THREADS or all cores)")
      .option("seed", "1", "random seed")
      .option("out", out_dir, "output folder")
      .option("resume", "", "a checkpoint.safetensors to continue from");
  add_precision_option(args);
  add_loss_scale_option(args);
}

void add_precision_option(cli::Args& args) {
  args.option("precision", "fp32",
              "fp32, bf16 or fp16: autocast convolutions and products to bfloat16 / float16 (fp16 training with loss "
              "scaling); parameters stay float32");
}

void add_loss_scale_option(cli::Args& args) {
  args.option("loss-scale", "65536", "fp16: the initial loss scale (halved after each step whose gradients overflow, "
                                     "doubled after 2000 clean steps)");
}

GradScalerOptions scaler_options(const cli::Args& args, const Precision& precision) {
  GradScalerOptions o;
  o.enabled = precision.low == DType::Float16;  // bfloat16 has float32's range and needs no scaling
  o.init_scale = args.number("loss-scale");
  return o;
}

Precision parse_precision(const cli::Args& args) {
  Precision p;
  p.name = args.str("precision");
  if (p.name == "bf16") p.low = DType::BFloat16;
  else if (p.name == "fp16") p.low = DType::Float16;
  else TS_CHECK(p.name == "fp32", "--precision must be fp32, bf16 or fp16, not '", p.name, "'");
  return p;
}


TrainingSetup start_training(const cli::Args& args, const std::string& program) {
  if (args.has("threads")) set_num_threads(static_cast<int>(args.integer("threads")));
  TrainingSetup s;
  s.world = join_world();
  s.device = rank_device(args.str("device"), s.world, program);
  s.seed = static_cast<uint64_t>(args.integer("seed"));
  s.precision = parse_precision(args);
  manual_seed(s.seed);
  if (args.has("verbose") && s.world.main()) std::printf("%s\n", kernels_line().c_str());
  return s;
}

int64_t resume_step(const cli::Args& args, Module& model, Optimizer& opt, const World& world, GradScaler* scaler) {
  if (!args.has("resume")) return 0;
  const int64_t step = load_checkpoint(args.str("resume"), model, opt, scaler).step;
  if (world.main()) std::printf("resumed from %s at step %lld\n", args.str("resume").c_str(), static_cast<long long>(step));
  return step;
}

void print_data_parallel(const World& world, int64_t batch, double lr) {
  if (!world.distributed || !world.main()) return;
  std::printf("data parallel: %d ranks x batch %lld = global batch %lld, lr %g (not scaled with the batch)\n", world.size,
              static_cast<long long>(batch), static_cast<long long>(batch * world.size), lr);
}

std::vector<Sample> next_batch(DataLoader& loader, int64_t& epoch) {
  std::optional<std::vector<Sample>> batch = loader.next();
  if (!batch) {
    loader.start_epoch(++epoch);
    batch = loader.next();
  }
  TS_CHECK(batch.has_value(), "no batch to train on: the training images (this rank's share of them) are fewer than --batch");
  return std::move(*batch);
}

std::string kernels_line() {
  return "cpu gemm: " + cpu_blas_info() + "; bfloat16: " +
         (cpu_bf16_kernels() ? std::string("tessera's GEMM on ") + cpu::gemm_bf16_kernel_name() : std::string("through float32"));
}

std::string memory_line(const Device& dev) {
  if (dev.is_cuda()) return "memory " + dev.str() + ": " + cuda::memory_summary(dev.index);
  const CpuMemoryStats m = cpu_memory_stats();
  auto mib = [](size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  char buf[200];
  std::snprintf(buf, sizeof buf, "memory cpu: %.1f MiB in large blocks, %.1f MiB cached, peak %.1f MiB, %llu system allocations, %llu cache hits",
                mib(m.allocated), mib(m.cached), mib(m.peak_allocated), static_cast<unsigned long long>(m.system_allocs),
                static_cast<unsigned long long>(m.hits));
  return buf;
}

std::map<std::string, std::string> unet_metadata(const UNetOptions& o) {
  return {{"model", "unet"},
          {"unet.in_channels", std::to_string(o.in_channels)},
          {"unet.num_classes", std::to_string(o.num_classes)},
          {"unet.width", std::to_string(o.width)},
          {"unet.depth", std::to_string(o.depth)},
          {"unet.same_padding", o.same_padding ? "1" : "0"},
          {"unet.batch_norm", o.batch_norm ? "1" : "0"}};
}

UNetOptions unet_options_from(const std::map<std::string, std::string>& m, const std::string& file) {
  auto get = [&](const char* k) -> int64_t {
    auto it = m.find(k);
    TS_CHECK(it != m.end(), file, ": not a tessera U-Net file (no '", k, "' in its metadata)");
    try {
      return std::stoll(it->second);
    } catch (const std::exception&) {
      TS_ERROR(file, ": metadata '", k, "' is not a number: '", it->second, "'");
    }
  };
  UNetOptions o;
  o.in_channels = get("unet.in_channels");
  o.num_classes = get("unet.num_classes");
  o.width = get("unet.width");
  o.depth = get("unet.depth");
  o.same_padding = get("unet.same_padding") != 0;
  o.batch_norm = get("unet.batch_norm") != 0;
  return o;
}

namespace {
std::string join(const std::vector<std::string>& v, char sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? std::string(1, sep) : "") + v[i];
  return s;
}
std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t k = s.find(sep, start);
    out.push_back(s.substr(start, k == std::string::npos ? std::string::npos : k - start));
    if (k == std::string::npos) break;
    start = k + 1;
  }
  return out;
}
}  // namespace

std::vector<double> parse_numbers(const std::string& text, const std::string& what) {
  std::vector<double> out;
  for (const std::string& item : split_on(text, ',')) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    TS_CHECK(used > 0 && used == item.size(), what, " must be a comma-separated list of numbers, got '", text, "'");
    out.push_back(v);
  }
  return out;
}

std::string join_numbers(const std::vector<double>& values) {
  std::string s;
  for (double v : values) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);  // reads back exactly; 16 stays "16"
    if (!s.empty()) s += ',';
    s += buf;
  }
  return s;
}

std::map<std::string, std::string> maskrcnn_metadata(const MaskRCNNConfig& c) {
  std::vector<std::string> ids;
  for (int64_t id : c.category_ids) ids.push_back(std::to_string(id));
  const MaskRCNNOptions& o = c.options;
  return {{"model", "maskrcnn"},
          {"maskrcnn.anchor_sizes", join_numbers(o.anchor_sizes)},
          {"maskrcnn.group_norm", std::to_string(o.backbone.group_norm_groups)},
          {"maskrcnn.num_classes", std::to_string(o.num_classes)},
          {"maskrcnn.backbone", std::to_string(o.backbone.depth)},
          {"maskrcnn.min_size", std::to_string(o.min_size)},
          {"maskrcnn.max_size", std::to_string(o.max_size)},
          {"maskrcnn.class_names", join(c.class_names, '\n')},
          {"maskrcnn.category_ids", join(ids, ',')}};
}

MaskRCNNConfig maskrcnn_config_from(const std::map<std::string, std::string>& m, const std::string& file) {
  auto get = [&](const char* k) -> std::string {
    auto it = m.find(k);
    TS_CHECK(it != m.end(), file, ": not a tessera Mask R-CNN file (no '", k, "' in its metadata)");
    return it->second;
  };
  auto number = [&](const char* k) -> double {
    const std::string v = get(k);
    try {
      return std::stod(v);
    } catch (const std::exception&) {
      TS_ERROR(file, ": metadata '", k, "' is not a number: '", v, "'");
    }
  };
  MaskRCNNConfig c;
  c.options.num_classes = static_cast<int64_t>(number("maskrcnn.num_classes"));
  c.options.backbone.depth = static_cast<int64_t>(number("maskrcnn.backbone"));
  c.options.min_size = number("maskrcnn.min_size");
  c.options.max_size = number("maskrcnn.max_size");
  // Files written before the option existed used torchvision's anchors (MaskRCNN checks the values).
  if (auto it = m.find("maskrcnn.anchor_sizes"); it != m.end())
    c.options.anchor_sizes = parse_numbers(it->second, file + ": metadata 'maskrcnn.anchor_sizes'");
  if (m.count("maskrcnn.group_norm")) c.options.backbone.group_norm_groups = static_cast<int64_t>(number("maskrcnn.group_norm"));
  c.class_names = split_on(get("maskrcnn.class_names"), '\n');
  for (const std::string& id : split_on(get("maskrcnn.category_ids"), ',')) {
    try {
      c.category_ids.push_back(std::stoll(id));
    } catch (const std::exception&) {
      TS_ERROR(file, ": metadata 'maskrcnn.category_ids' holds '", id, "', not an integer");
    }
  }
  TS_CHECK(static_cast<int64_t>(c.class_names.size()) == c.options.num_classes &&
               static_cast<int64_t>(c.category_ids.size()) == c.options.num_classes,
           file, ": ", c.options.num_classes, " classes but ", c.class_names.size(), " names and ", c.category_ids.size(),
           " category ids in the metadata");
  return c;
}

void load_detection_weights(MaskRCNN& model, const std::string& path) {
  SafetensorsFile f = load_safetensors(path);
  bool classifier = false;
  for (const auto& [k, v] : f.tensors) classifier = classifier || k.rfind("layer1.", 0) == 0;
  const std::string prefix = classifier ? "backbone.body." : "";
  const auto mine = model.state_dict_map();
  std::map<std::string, Tensor> fitting;
  std::vector<std::string> skipped;
  for (const auto& [k, v] : f.tensors) {
    auto it = mine.find(prefix + k);
    if (it != mine.end() && it->second.shape() == v.shape()) fitting[prefix + k] = v;
    else if (k.find("num_batches_tracked") == std::string::npos && k.rfind("fc.", 0) != 0)
      skipped.push_back(k + (it == mine.end() ? " (not in the model)" : " (shape " + shape_str(v.shape()) + ")"));
  }
  TS_CHECK(!fitting.empty(), path, ": none of its tensors fits this model (is it a detection or ResNet state_dict?)");
  model.load_state_dict(fitting, false);
  std::printf("loaded %zu of the model's %zu tensors from %s%s\n", fitting.size(), mine.size(), path.c_str(),
              classifier ? " (a ResNet classifier: into the backbone)" : "");
  for (size_t i = 0; i < skipped.size() && i < 8; ++i) std::printf("  skipped %s\n", skipped[i].c_str());
  if (skipped.size() > 8) std::printf("  ... and %zu more skipped\n", skipped.size() - 8);
}

}  // namespace tessera::driver
