// train_maskrcnn: trains Mask R-CNN (ResNet-FPN) on synthetic shapes (the default: discs, squares
// and triangles on flat random backgrounds) or on a COCO instances file. Progress lines carry the
// five losses and images/s; every --eval-every steps the held-out set is evaluated with COCO's AP
// (bbox and segm) and a preview picture of its first images is written. Checkpoints are atomic.
//
//   train_maskrcnn --backbone resnet18 --rois-per-image 32 --iters 6000 --out runs/maskrcnn  (segm AP50 1.00, README)
//   train_maskrcnn --coco instances.json --images DIR --weights maskrcnn_resnet50_fpn.safetensors
#include <cstdio>
#include <filesystem>
#include <optional>

#include "data/augment.h"
#include "data/coco.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "distributed/ddp.h"
#include "drivers/args.h"
#include "drivers/common.h"
#include "drivers/draw.h"
#include "eval/coco_eval.h"
#include "optim/checkpoint.h"
#include "tessera.h"

namespace fs = std::filesystem;
using namespace tessera;

namespace {

int64_t backbone_depth(const std::string& name) {
  for (int64_t d : {18, 34, 50, 101})
    if (name == "resnet" + std::to_string(d)) return d;
  TS_ERROR("--backbone must be resnet18, resnet34, resnet50 or resnet101, not '", name, "'");
}

// --steps: fractions of --iters (below 1) or step numbers.
std::vector<int64_t> parse_steps(const std::string& s, int64_t iters) {
  std::vector<int64_t> out;
  for (double v : driver::parse_numbers(s, "--steps"))
    out.push_back(v < 1 ? static_cast<int64_t>(v * static_cast<double>(iters)) : static_cast<int64_t>(v));
  return out;
}

// --norm gn: GroupNorm's group count (Wu & He's default).
constexpr int64_t kGroupNormGroups = 32;

struct EvalResult {
  CocoEvalStats bbox, segm;
  Tensor preview;
};

// Every rank detects its shard of the held-out images (i = rank, rank + ranks, ...); rank 0 gets
// all the detections, in image order, and computes COCO's AP (the others return nothing). The
// preview shows the first four images of rank 0's shard.
EvalResult evaluate(MaskRCNN& net, const Dataset& val, const std::optional<CocoDataset>& gt, const std::vector<int64_t>& image_ids,
                    const driver::MaskRCNNConfig& cfg, Device dev) {
  net.eval();
  std::vector<Tensor> pictures;
  const std::vector<CocoResult> results = sharded_coco_results(val.size(), [&](int64_t i) {
    const Sample s = val.get(i);
    const Detections d = net.detect({s.image.to(dev)}).front();
    Detections host{d.boxes.cpu(), d.scores.cpu(), d.labels.cpu(), d.masks.cpu()};
    if (dist::is_main() && pictures.size() < 4) pictures.push_back(driver::draw_detections(s.image, host, cfg.class_names, 0.5));
    return detections_to_coco(host, image_ids[static_cast<size_t>(i)], cfg.category_ids);
  });
  net.train();
  if (!dist::is_main()) return {};
  return EvalResult{coco_evaluate(*gt, results, "bbox"), coco_evaluate(*gt, results, "segm"), driver::panel(pictures)};
}

int run(int argc, char** argv) {
  cli::Args args("train_maskrcnn", "Train Mask R-CNN (ResNet-FPN) on synthetic shapes or a COCO instances file.");
  args.flag("synthetic", "train on synthetic shapes (the default when --coco is not given)")
      .option("coco", "", "a COCO instances JSON (training set)")
      .option("images", "", "the folder of the --coco images")
      .option("val-coco", "", "a COCO instances JSON for evaluation (default: the last 10% of --coco)")
      .option("val-images", "", "the folder of the --val-coco images (default: --images)")
      .option("backbone", "resnet18", "resnet18, resnet34, resnet50 or resnet101")
      .option("weights", "", "initial weights: a Mask R-CNN or ResNet state_dict as safetensors (e.g. torchvision's)")
      .option("norm", "", "backbone norm: frozen-bn, bn (batch statistics, torchvision's choice from scratch) or gn "
                          "(GroupNorm, 32 groups); default: frozen-bn with --weights, else gn")
      .option("trainable-layers", "", "backbone stages that train, 0-5 (default: 3 with --weights, else 5)")
      .option("min-size", "", "resize: shorter side (default: 800, synthetic: the image size)")
      .option("max-size", "", "resize: longer side at most (default: 1333, synthetic: the image size)")
      .option("anchor-sizes", "", "anchor size per FPN level P2..P6 (default: 32,64,128,256,512; synthetic: 16,32,64,128,256)")
      .option("rois-per-image", "512", "RoIs sampled per image for the box and mask heads (torchvision: 512)")
      .option("detections-per-image", "100", "evaluation: keep at most this many detections per image (torchvision: 100)")
      .option("iters", "3000", "training steps")
      .option("batch", "2", "images per step")
      .option("lr", "0.01", "learning rate")
      .option("momentum", "0.9", "SGD momentum")
      .option("weight-decay", "0.0001", "L2 weight decay")
      .option("warmup", "200", "steps of linear warm-up from 0.1% (torchvision's reference: 1000)")
      .option("steps", "0.67,0.89", "learning-rate drops by 10x at these steps (fractions of --iters, or step numbers)")
      .option("train-images", "1000", "synthetic training images")
      .option("eval-images", "50", "synthetic held-out images")
      .option("image-size", "128", "synthetic image size")
      .option("eval-every", "500", "evaluate every N steps (and at the end); 0: only at the end");
  driver::add_training_options(args, "runs/maskrcnn", 20);
  args.parse(argc, argv);
  const driver::TrainingSetup setup = driver::start_training(args, "train_maskrcnn");
  const driver::World world = setup.world;
  const Device dev = setup.device;
  const uint64_t seed = setup.seed;
  const fs::path out = args.str("out");
  if (world.main()) fs::create_directories(out);  // rank 0 writes every file

  // ---- data
  driver::MaskRCNNConfig cfg;
  std::shared_ptr<const Dataset> train_ds, val_ds;
  std::string gt_path;
  if (!args.has("coco")) {
    const int64_t size = args.integer("image-size");
    train_ds = std::make_shared<SyntheticShapes>(args.integer("train-images"), seed, size, size);
    auto val = std::make_shared<SyntheticShapes>(args.integer("eval-images"), seed + 7919, size, size);
    val_ds = val;
    cfg.class_names = {"background"};
    cfg.category_ids = {0};
    for (int64_t l = 1; l <= SyntheticShapes::kNumClasses; ++l) {
      cfg.class_names.push_back(SyntheticShapes::class_name(l));
      cfg.category_ids.push_back(l);
    }
    // The held-out set as a COCO file: the ground truth of the evaluation.
    std::vector<Sample> samples;
    for (int64_t i = 0; i < val->size(); ++i) samples.push_back(val->get(i));
    gt_path = (out / "eval_ground_truth.json").string();
    if (world.main())
      save_coco_annotations(gt_path, samples, std::vector<std::string>(cfg.class_names.begin() + 1, cfg.class_names.end()));
    cfg.options.min_size = cfg.options.max_size = static_cast<double>(size);
  } else {
    TS_CHECK(args.has("images"), "--coco needs --images (the folder of its images)");
    auto all = std::make_shared<CocoDataset>(args.str("coco"), args.str("images"));
    cfg.class_names = {"background"};
    cfg.category_ids = {0};
    for (int64_t l = 1; l <= all->num_classes(); ++l) {
      cfg.class_names.push_back(all->category_names()[static_cast<size_t>(l - 1)]);
      cfg.category_ids.push_back(all->category_ids()[static_cast<size_t>(l - 1)]);
    }
    if (args.has("val-coco")) {
      train_ds = all;
      val_ds = std::make_shared<CocoDataset>(args.str("val-coco"), args.has("val-images") ? args.str("val-images") : args.str("images"));
      gt_path = args.str("val-coco");
    } else {
      TS_CHECK(all->size() >= 2, args.str("coco"), ": need at least 2 images (one is held out for evaluation)");
      const int64_t n_val = std::max<int64_t>(1, all->size() / 10);
      train_ds = std::make_shared<Subset>(all, 0, all->size() - n_val);
      auto held = std::make_shared<Subset>(all, all->size() - n_val, all->size());
      val_ds = held;
      std::vector<Sample> samples;
      for (int64_t i = 0; i < held->size(); ++i) samples.push_back(held->get(i));
      gt_path = (out / "eval_ground_truth.json").string();
      if (world.main())
        save_coco_annotations(gt_path, samples, std::vector<std::string>(cfg.class_names.begin() + 1, cfg.class_names.end()));
    }
  }
  if (args.has("min-size")) cfg.options.min_size = args.number("min-size");
  if (args.has("max-size")) cfg.options.max_size = args.number("max-size");
  std::optional<CocoDataset> gt;  // rank 0 evaluates; every rank detects its shard, with the images' ids from rank 0
  Tensor val_ids = zeros({val_ds->size()}, options(kInt64, kCPU));
  if (world.main()) {
    gt.emplace(gt_path, "", true);
    TS_CHECK(gt->size() == val_ds->size(), "internal: the evaluation ground truth has ", gt->size(), " images, the set ", val_ds->size());
    for (int64_t i = 0; i < gt->size(); ++i) val_ids.data<int64_t>()[i] = gt->image(i).id;
  }
  if (world.distributed) dist::broadcast(val_ids, 0);
  const std::vector<int64_t> image_ids = val_ids.to_vector<int64_t>();

  // ---- model and optimiser
  cfg.options.num_classes = static_cast<int64_t>(cfg.class_names.size());
  cfg.options.backbone.depth = backbone_depth(args.str("backbone"));
  cfg.options.roi_heads.batch_size_per_image = args.integer("rois-per-image");
  cfg.options.roi_heads.detections_per_img = args.integer("detections-per-image");  // RoIHeads checks it
  if (args.has("anchor-sizes"))
    cfg.options.anchor_sizes = driver::parse_numbers(args.str("anchor-sizes"), "--anchor-sizes");  // MaskRCNN checks them
  else if (!args.has("coco"))
    cfg.options.anchor_sizes = {16, 32, 64, 128, 256};  // the shapes are 20..64 px; torchvision's 32..512 suit 800-px images
  // As torchvision, a pretrained backbone keeps its statistics frozen. From scratch torchvision uses
  // BatchNorm2d with batch statistics; with a batch of two images those statistics swing from batch
  // to batch (on the shapes, with the background colours) and the running averages used in
  // evaluation fit none of them: segm AP50 0.42 after 2000 steps, against 0.98 with GroupNorm
  // (README). So GroupNorm is the default from scratch; --norm bn gives torchvision's choice.
  cfg.options.backbone.frozen_batch_norm = args.has("weights");
  cfg.options.backbone.group_norm_groups = args.has("weights") ? 0 : kGroupNormGroups;
  if (args.has("norm")) {
    const std::string norm = args.str("norm");
    TS_CHECK(norm == "frozen-bn" || norm == "bn" || norm == "gn", "--norm must be frozen-bn, bn or gn, not '", norm, "'");
    cfg.options.backbone.frozen_batch_norm = norm == "frozen-bn";
    cfg.options.backbone.group_norm_groups = norm == "gn" ? kGroupNormGroups : 0;
  }
  cfg.options.backbone.trainable_layers = args.has("trainable-layers") ? args.integer("trainable-layers") : (args.has("weights") ? 3 : 5);
  MaskRCNN net(cfg.options);
  if (args.has("weights")) driver::load_detection_weights(net, args.str("weights"));
  net.to(dev);
  net.train();
  // Under mpirun: rank 0's initial weights everywhere, gradients averaged across ranks in backward
  // (parameters a rank's images did not reach count as zeros there).
  std::unique_ptr<dist::DistributedDataParallel> ddp;
  if (world.distributed) ddp = std::make_unique<dist::DistributedDataParallel>(net);
  std::vector<Tensor> params;
  for (const Tensor& p : net.parameters())
    if (p.requires_grad()) params.push_back(p);
  const int64_t iters = args.integer("iters");
  SGD opt(params, SGDOptions{args.number("lr"), args.number("momentum"), 0.0, args.number("weight-decay")});
  const Schedule schedule = Schedule::warmup_linear(args.integer("warmup"), 0.001) *
                            Schedule::multi_step(parse_steps(args.str("steps"), iters), 0.1);
  const driver::Precision& precision = setup.precision;
  GradScaler scaler(driver::scaler_options(args, precision));
  const int64_t start = driver::resume_step(args, net, opt, world, &scaler);

  LoaderOptions lo;
  lo.batch_size = args.integer("batch");
  lo.seed = seed;
  lo.workers = static_cast<int>(args.integer("workers"));
  lo.drop_last = true;
  lo.replicas = world.size;  // each rank its own shard of every epoch
  lo.rank = world.rank;
  DataLoader loader(train_ds, lo, [](Sample s, DataRng& rng) { return rng.uniform() < 0.5 ? hflip(s) : s; });
  const int64_t groups = cfg.options.backbone.group_norm_groups;
  const std::string norm_name = groups > 0 ? "GroupNorm(" + std::to_string(groups) + ")"
                                : cfg.options.backbone.frozen_batch_norm ? "FrozenBatchNorm"
                                                                         : "BatchNorm";
  driver::print_data_parallel(world, lo.batch_size, args.number("lr"));
  if (world.main())
  std::printf("Mask R-CNN %s-FPN (%s): %lld parameters (%lld trained), %lld classes, images resized to %g..%g, anchors %s, "
              "%lld RoIs per image, %s, %lld CPU threads; %lld training / %lld evaluation images\n",
              args.str("backbone").c_str(), norm_name.c_str(), (long long)net.num_parameters(), (long long)net.num_parameters(true),
              (long long)cfg.options.num_classes - 1, cfg.options.min_size, cfg.options.max_size,
              driver::join_numbers(cfg.options.anchor_sizes).c_str(),
              (long long)cfg.options.roi_heads.batch_size_per_image, dev.str().c_str(),
              (long long)num_threads(), (long long)train_ds->size(), (long long)val_ds->size());

  driver::JsonLines metrics(world.main() ? (out / "metrics.jsonl").string() : std::string(), start > 0);
  const driver::Clock clock;
  // A resumed run continues the epoch where the checkpoint stopped (its step's batch).
  const int64_t per_epoch = std::max<int64_t>(1, loader.batches_per_epoch());
  int64_t epoch = start / per_epoch, images = 0;
  loader.start_epoch(epoch, start % per_epoch);
  std::map<std::string, double> sums;
  int64_t n_sum = 0, skipped = 0;
  EvalResult last;
  Generator sampler_gen(seed + 17 + static_cast<uint64_t>(world.rank));  // each rank its own RoI samples
  const int64_t eval_every = args.integer("eval-every");
  for (int64_t step = start; step < iters; ++step) {
    const std::vector<Sample> batch = driver::next_batch(loader, epoch);
    opt.set_lr(schedule.lr(args.number("lr"), step));
    opt.zero_grad();
    MaskRCNNLosses l;
    {
      std::optional<AutocastGuard> amp;
      precision.enter(amp, dev);
      l = net.losses(batch, &sampler_gen);
    }
    Tensor total = l.total();
    scaler.scale(total).backward();
    if (ddp) ddp->finish();  // every rank now holds the gradient of the global batch
    const bool stepped = scaler.step(opt);  // fp16: skipped when a gradient overflowed
    scaler.update();
    const double lt = total.item<float>();
    if (!stepped) {
      ++skipped;  // its losses are left out of the averages
    } else {
      TS_CHECK(std::isfinite(lt), "the loss became ", lt, " at step ", step, " (try a lower --lr or a longer --warmup)");
      const std::pair<const char*, const Tensor*> parts[] = {
          {"loss_classifier", &l.loss_classifier}, {"loss_box_reg", &l.loss_box_reg}, {"loss_mask", &l.loss_mask},
          {"loss_objectness", &l.loss_objectness}, {"loss_rpn_box_reg", &l.loss_rpn_box_reg}};
      for (const auto& [name, t] : parts) sums[name] += t->item<float>();
      sums["loss"] += lt;
      ++n_sum;
    }
    images += static_cast<int64_t>(batch.size());
    const bool final_step = step + 1 == iters;
    if ((step + 1) % args.integer("log-every") == 0 || final_step) {
      if (world.distributed) {  // the losses over every rank's images (every rank loads as many)
        std::vector<double> v = {static_cast<double>(n_sum)};
        for (const auto& [k, x] : sums) v.push_back(x);
        Tensor totals = from_vector<double>(v);
        dist::all_reduce(totals);
        v = totals.to_vector<double>();
        n_sum = static_cast<int64_t>(v[0]);
        size_t i = 1;
        for (auto& [k, x] : sums) x = v[i++];
      }
      const double secs = clock.seconds(), rate = static_cast<double>(images * world.size) / std::max(secs, 1e-9);
      const double eta = clock.eta(step + 1 - start, iters - step - 1);
      auto avg = [&](const char* k) { return sums[k] / static_cast<double>(n_sum); };
      if (world.main())
      std::printf("iter %6lld/%lld | loss %.4f (cls %.4f box %.4f mask %.4f obj %.4f rpn %.4f) | %.2f img/s | lr %.2e | "
                  "elapsed %s | eta %s\n",
                  (long long)(step + 1), (long long)iters, avg("loss"), avg("loss_classifier"), avg("loss_box_reg"),
                  avg("loss_mask"), avg("loss_objectness"), avg("loss_rpn_box_reg"), rate, opt.lr(),
                  cli::format_duration(secs).c_str(), cli::format_duration(eta).c_str());
      if (scaler.enabled() && world.main())
        std::printf("  loss scale %g, %lld steps skipped\n", scaler.get_scale(), (long long)skipped);
      if (args.has("verbose") && world.main()) std::printf("  %s\n", driver::memory_line(dev).c_str());
      std::fflush(stdout);
      std::map<std::string, double> row = {{"iter", double(step + 1)}, {"images_per_s", rate}, {"lr", opt.lr()}, {"elapsed_s", secs}};
      for (const auto& [k, v] : sums) row[k] = v / static_cast<double>(n_sum);
      if (scaler.enabled()) {
        row["loss_scale"] = scaler.get_scale();
        row["skipped_steps"] = double(skipped);
      }
      metrics.write(row, {{"precision", precision.name}});
      sums.clear();
      n_sum = 0;
    }
    if ((eval_every > 0 && (step + 1) % eval_every == 0) || final_step) {
      const double te = clock.seconds();
      std::optional<AutocastGuard> amp;  // evaluation in the training precision
      precision.enter(amp, dev);
      last = evaluate(net, *val_ds, gt, image_ids, cfg, dev);  // every rank detects its shard
      if (!world.main()) continue;
      std::printf("  eval @%lld on %lld images (%.0f s): bbox AP %.3f AP50 %.3f AP75 %.3f | segm AP %.3f AP50 %.3f AP75 %.3f\n",
                  (long long)(step + 1), (long long)val_ds->size(), clock.seconds() - te, last.bbox.ap(), last.bbox.ap50(),
                  last.bbox.ap75(), last.segm.ap(), last.segm.ap50(), last.segm.ap75());
      std::fflush(stdout);
      std::map<std::string, double> row = {{"iter", double(step + 1)}};
      row.merge(last.bbox.named("bbox"));
      row.merge(last.segm.named("segm"));
      metrics.write(row);
      write_png((out / ("preview_" + std::to_string(step + 1) + ".png")).string(), last.preview);
    }
    if (((step + 1) % args.integer("save-every") == 0 || final_step) && world.main()) {
      // The replicas are equal: rank 0's checkpoint resumes on any number of ranks.
      TrainingState st{step + 1, driver::maskrcnn_metadata(cfg)};
      st.extra["train_precision"] = precision.name;
      save_checkpoint((out / "checkpoint.safetensors").string(), net, opt, st, &scaler);
    }
  }
  if (!world.main()) {
    dist::finalize();
    return 0;
  }
  auto meta = driver::maskrcnn_metadata(cfg);
  meta["train_precision"] = precision.name;  // the weights themselves are float32
  save_module(net, (out / "model.safetensors").string(), meta);
  std::map<std::string, double> summary = {{"iters", double(iters)}, {"seconds", clock.seconds()}, {"parameters", double(net.num_parameters())}};
  summary.merge(last.bbox.named("bbox"));
  summary.merge(last.segm.named("segm"));
  driver::write_json((out / "summary.json").string(), summary,
                     {{"model", (out / "model.safetensors").string()}, {"backbone", args.str("backbone")},
                      {"precision", precision.name}});
  std::printf("done in %s: bbox AP %.3f (AP50 %.3f), segm AP %.3f (AP50 %.3f) on %lld held-out images. Model: %s\n",
              cli::format_duration(clock.seconds()).c_str(), last.bbox.ap(), last.bbox.ap50(), last.segm.ap(), last.segm.ap50(),
              (long long)val_ds->size(), (out / "model.safetensors").string().c_str());
  dist::finalize();
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tessera::driver::guarded_main(argc, argv, run); }
