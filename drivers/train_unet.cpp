// train_unet: trains the U-Net of the 2015 paper — weighted pixel-wise cross-entropy (class balance
// + the touching-cell border term), SGD with high momentum, elastic/rigid/gray augmentation, one
// large tile per step — on synthetic touching cells (the default) or on a folder of images and
// label masks. Prints a progress line, writes metrics.jsonl, validation previews and atomic
// checkpoints into --out.
#include <cstdio>
#include <filesystem>
#include <optional>

#include "data/augment.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "data/weight_map.h"
#include "distributed/ddp.h"
#include "drivers/args.h"
#include "drivers/common.h"
#include "eval/challenges.h"
#include "eval/segmentation.h"
#include "optim/checkpoint.h"
#include "tessera.h"

namespace fs = std::filesystem;
using namespace tessera;

namespace {

// Instances for the weight map: the dataset's own, or the connected components of the foreground
// (folder data separates touching cells by background borders, as the ISBI data does).
Tensor instances_of(const Sample& s) {
  if (s.instances.defined()) return s.instances;
  return connected_components(gt(s.mask, 0.0));
}

// --ignore-label: pixels of that mask value (PASCAL VOC's object borders: 255) count as background
// for the weight map and the instances, and are left out of the loss and the pixel metrics. Returns
// where they are (undefined without the option); the mask then holds 0 there. Any other value
// outside [0, classes) is an Error that names the option (and `sample`, when given).
Tensor take_ignored(Sample& s, const std::optional<int64_t>& ignore, int64_t num_classes, const std::string& sample = "") {
  Tensor ignored;
  if (ignore) {
    ignored = eq(s.mask, static_cast<double>(*ignore));
    s.mask = where(ignored, 0.0, s.mask);
  }
  const int64_t lo = amin(s.mask).item<int64_t>(), hi = amax(s.mask).item<int64_t>();
  TS_CHECK(lo >= 0 && hi < num_classes, sample, "mask value ", lo < 0 ? lo : hi, " is outside [0, ", num_classes,
           ") (--classes ", num_classes, ignore ? "" : "; --ignore-label V leaves pixels of value V out, e.g. PASCAL VOC's 255", ")");
  return ignored;
}

struct Tile {
  int64_t in, out, margin;
};

// A random training tile: input [C, in, in] with mirrored context, target and weights [out, out]
// (pixels beyond the image are ignored).
Sample crop_tile(const Sample& s, const Tile& t, DataRng& rng) {
  const int64_t H = s.image.size(1), W = s.image.size(2);
  const int64_t oy = H > t.out ? rng.randint(0, H - t.out + 1) : 0, ox = W > t.out ? rng.randint(0, W - t.out + 1) : 0;
  const int64_t extra_h = std::max<int64_t>(0, oy + t.out - H), extra_w = std::max<int64_t>(0, ox + t.out - W);
  Sample r;
  r.image = mirror_pad(s.image, t.margin, t.margin + extra_h, t.margin, t.margin + extra_w).narrow(1, oy, t.in).narrow(2, ox, t.in).contiguous();
  Tensor mask = pad(s.mask, {0, extra_w, 0, extra_h}, "constant", -100.0);
  Tensor weight = pad(s.weight, {0, extra_w, 0, extra_h}, "constant", 0.0);
  r.mask = mask.narrow(0, oy, t.out).narrow(1, ox, t.out).contiguous();
  r.weight = weight.narrow(0, oy, t.out).narrow(1, ox, t.out).contiguous();
  r.name = s.name;
  return r;
}

struct ValResult {
  double iou_fg = 0, dice_fg = 0, pixel_err = 0, rand_err = 0, f1 = 0;
  double seg = 0, det = 0, v_rand = 0, v_info = 0;  // the challenges' measures (CTC SEG/DET; ISBI V_Rand/V_Info, 2 classes)
  int64_t cells = 0, matched = 0, merged = 0, predicted = 0, ignored = 0;
  Tensor preview;
};

ValResult validate(UNet& net, const Dataset& val, int64_t out_tile, Device dev, int64_t num_classes,
                   const std::optional<int64_t>& ignore) {
  net.eval();
  ValResult r;
  std::vector<Tensor> preds, targets, ref_instances, pred_instances, truth_slices, prob_slices;
  double rand_sum = 0;
  for (int64_t i = 0; i < val.size(); ++i) {
    Sample s = val.get(i);
    const Tensor ignored = take_ignored(s, ignore, num_classes, "validation " + val.describe(i) + ": ");
    Tensor logits = predict_tiled(net, s.image.to(dev), out_tile);
    Tensor pred = argmax(logits, 1).squeeze(0).cpu();
    if (ignored.defined()) {  // the pixel metrics count the other pixels only
      const Tensor keep = nonzero(logical_not(ignored).flatten()).flatten();
      r.ignored += ignored.numel() - keep.numel();
      preds.push_back(index_select(pred.flatten(), 0, keep));
      targets.push_back(index_select(s.mask.flatten(), 0, keep));
    } else {
      preds.push_back(pred.flatten());
      targets.push_back(s.mask.flatten());
    }
    const Tensor inst = instances_of(s);
    InstanceScore sc = instance_score(gt(pred, 0.0), inst);
    r.cells += sc.true_cells;
    r.matched += sc.matched;
    r.merged += sc.merged;
    r.predicted += sc.predicted;
    rand_sum += rand_error(connected_components(gt(pred, 0.0)), inst);
    const Tensor prob = softmax(logits, 1).select(0, 0).select(0, num_classes - 1).cpu();
    ref_instances.push_back(inst);
    pred_instances.push_back(connected_components(gt(pred, 0.0), nullptr, 4));
    if (num_classes == 2 && !ignored.defined() && sum(s.mask).item<int64_t>() > 0) {
      truth_slices.push_back(s.mask);
      prob_slices.push_back(prob);
    }
    if (i == 0) {
      Tensor weight = unet_weight_map(s.mask, inst, num_classes);
      r.preview = driver::panel({s.image, driver::overlay(s.image, pred), prob.unsqueeze(0), driver::label_image(s.mask, num_classes),
                                 div(weight, amax(weight).item<float>()).unsqueeze(0)});
    }
  }
  Tensor p = cat(preds), t = cat(targets);
  const auto iou = iou_per_class(p, t, num_classes);
  const auto dice = dice_per_class(p, t, num_classes);
  double iou_fg = 0, dice_fg = 0;
  for (int64_t c = 1; c < num_classes; ++c) {
    iou_fg += iou[c] / static_cast<double>(num_classes - 1);
    dice_fg += dice[c] / static_cast<double>(num_classes - 1);
  }
  r.iou_fg = iou_fg;
  r.dice_fg = dice_fg;
  r.pixel_err = pixel_error(p, t);
  r.rand_err = rand_sum / static_cast<double>(val.size());
  const double prec = r.predicted ? static_cast<double>(r.matched) / r.predicted : 0, rec = r.cells ? static_cast<double>(r.matched) / r.cells : 0;
  r.f1 = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
  const CtcScores ctc = ctc_scores(ref_instances, pred_instances);
  r.seg = ctc.seg;
  r.det = ctc.det;
  if (!truth_slices.empty() && truth_slices.size() == static_cast<size_t>(val.size())) {
    bool same = true;  // one stack when the slices agree in size, else the mean of per-image scores
    for (const Tensor& t : truth_slices) same = same && t.shape() == truth_slices[0].shape();
    if (same) {
      const IsbiScores sc = isbi_scores(stack(truth_slices), stack(prob_slices), false);
      r.v_rand = sc.v_rand, r.v_info = sc.v_info;
    } else {
      for (size_t k = 0; k < truth_slices.size(); ++k) {
        const IsbiScores sc = isbi_scores(truth_slices[k], prob_slices[k], false);
        r.v_rand += sc.v_rand / static_cast<double>(truth_slices.size());
        r.v_info += sc.v_info / static_cast<double>(truth_slices.size());
      }
    }
  } else {
    r.v_rand = r.v_info = NAN;
  }
  net.train();
  return r;
}

int run(int argc, char** argv) {
  cli::Args args("train_unet", "Train the 2015 U-Net on synthetic touching cells (default) or a folder of images + masks.");
  args.flag("synthetic", "train on synthetic touching cells (the default when --data is not given)")
      .option("data", "", "a folder with images/ and masks/ (label images, values 0..classes-1; val/images, val/masks if present), or a Cell Tracking Challenge sequence folder (01/ beside 01_GT/SEG)")
      .flag("instances", "the masks/ of --data hold instance ids (CTC's man_seg, the Data Science Bowl's): two classes with a background line between touching instances, and the weight map from the real ids")
      .flag("silver", "a CTC sequence's silver truth (01_ST/SEG) instead of the gold (01_GT/SEG)")
      .option("data-volume", "", "ISBI 2012: the image stack (train-volume.tif), with --data-labels")
      .option("data-labels", "", "ISBI 2012: the label stack (train-labels.tif: 0 = membrane, 255 = cell)")
      .option("classes", "2", "number of classes")
      .option("ignore-label", "", "a mask value left out of the loss and the metrics (e.g. 255: PASCAL VOC's object borders)")
      .option("width", "64", "channels of the first level (the paper: 64)")
      .option("depth", "4", "poolings (the paper: 4)")
      .flag("batch-norm", "batch normalisation after each 3x3 convolution")
      .option("dropout", "0.5", "dropout probability at the end of the contracting path (the paper: 0.5)")
      .option("tile", "572", "input tile size (output = tile - 2 * margin; the paper: 572 -> 388)")
      .option("batch", "1", "tiles per step (the paper: 1 large tile)")
      .option("iters", "2000", "training steps")
      .option("optimizer", "adam", "adam, or sgd (the paper: SGD with momentum 0.99; see the README on its stability)")
      .option("lr", "0.001", "learning rate")
      .option("momentum", "0.99", "SGD momentum (the paper: 0.99)")
      .option("clip", "0", "clip the gradients' joint norm to this (0: off)")
      .option("warmup", "0", "steps of linear learning-rate warm-up from 1%")
      .option("weight-decay", "0", "L2 weight decay")
      .option("w0", "10", "weight of the border term of the weight map")
      .option("sigma", "5", "width (pixels) of the border term")
      .option("elastic", "10", "elastic deformation: displacement std (pixels) on a 3x3 grid; 0 = off")
      .option("train-images", "1000", "synthetic training images")
      .option("val-images", "8", "synthetic validation images")
      .option("image-size", "256", "synthetic image size")
      .option("val-every", "250", "validate every N steps (and at the end)");
  driver::add_training_options(args, "runs/unet", 10);
  args.parse(argc, argv);
  const driver::TrainingSetup setup = driver::start_training(args, "train_unet");
  const driver::World world = setup.world;
  const Device dev = setup.device;
  const uint64_t seed = setup.seed;

  UNetOptions o;
  o.num_classes = args.integer("classes");
  o.width = args.integer("width");
  o.depth = args.integer("depth");
  o.batch_norm = args.has("batch-norm");
  o.dropout = args.number("dropout");
  const bool isbi = args.has("data-volume") || args.has("data-labels");
  TS_CHECK(!isbi || (args.has("data-volume") && args.has("data-labels") && !args.has("data")),
           "train_unet: ISBI stacks need both --data-volume and --data-labels (and no --data)");
  const bool synthetic = !args.has("data") && !isbi;
  std::shared_ptr<const Dataset> train_ds, val_ds;
  // The last 10% (at least one) of a dataset without its own validation part is held out.
  auto hold_out = [&](std::shared_ptr<const Dataset> all, const std::string& what) {
    TS_CHECK(all->size() >= 2, "train_unet: need at least 2 images in ", what, " (one is held out for validation)");
    const int64_t n_val = std::max<int64_t>(1, all->size() / 10);
    train_ds = std::make_shared<Subset>(all, 0, all->size() - n_val);
    val_ds = std::make_shared<Subset>(all, all->size() - n_val, all->size());
  };
  if (isbi) {
    hold_out(std::make_shared<IsbiStack>(args.str("data-volume"), args.str("data-labels")), args.str("data-volume"));
    o.in_channels = train_ds->get(0).image.size(0);
  } else if (!synthetic && CtcSequence::looks_like(args.str("data")) && !fs::is_directory(fs::path(args.str("data")) / "images")) {
    hold_out(std::make_shared<CtcSequence>(args.str("data"), args.has("silver")), args.str("data"));
    o.in_channels = train_ds->get(0).image.size(0);
  } else if (synthetic) {
    const int64_t size = args.integer("image-size");
    train_ds = std::make_shared<SyntheticCells>(args.integer("train-images"), seed, size, size);
    val_ds = std::make_shared<SyntheticCells>(args.integer("val-images"), seed + 1000003, size, size);
  } else {
    const fs::path dir = args.str("data");
    TS_CHECK(fs::is_directory(dir / "images") && fs::is_directory(dir / "masks"), "train_unet: --data '", dir.string(),
             "' has neither images/ and masks/ nor a Cell Tracking Challenge layout (", dir.filename().string(), "_GT/SEG beside it)");
    const bool inst = args.has("instances");
    auto all = std::make_shared<ImageMaskFolder>((dir / "images").string(), (dir / "masks").string(), 1, inst);
    if (fs::is_directory(dir / "val" / "images")) {
      train_ds = all;
      val_ds = std::make_shared<ImageMaskFolder>((dir / "val" / "images").string(), (dir / "val" / "masks").string(), 1, inst);
    } else {
      hold_out(all, dir.string());
    }
    o.in_channels = train_ds->get(0).image.size(0);
  }
  UNet net(o);
  Tile tile;
  tile.in = args.integer("tile");
  tile.out = net.output_size(tile.in);  // an Error with the nearest valid sizes for a bad --tile
  tile.margin = (tile.in - tile.out) / 2;
  net.to(dev);
  // Under mpirun: rank 0's initial weights everywhere, gradients averaged across ranks in backward.
  std::unique_ptr<dist::DistributedDataParallel> ddp;
  if (world.distributed) ddp = std::make_unique<dist::DistributedDataParallel>(net);
  std::unique_ptr<Optimizer> opt_ptr;
  if (args.str("optimizer") == "sgd")
    opt_ptr = std::make_unique<SGD>(net.parameters(),
                                    SGDOptions{args.number("lr"), args.number("momentum"), 0.0, args.number("weight-decay")});
  else if (args.str("optimizer") == "adam")
    opt_ptr = std::make_unique<Adam>(net.parameters(), AdamOptions{args.number("lr"), 0.9, 0.999, 1e-8, args.number("weight-decay")});
  else
    TS_ERROR("--optimizer must be sgd or adam, not '", args.str("optimizer"), "'");
  Optimizer& opt = *opt_ptr;
  const double clip = args.number("clip");
  const Schedule schedule = Schedule::warmup_linear(args.integer("warmup"), 0.01);
  const fs::path out = args.str("out");
  if (world.main()) {
    fs::create_directories(out);
    // The first validation image, so that `predict unet` has a picture to try.
    write_png((out / "val_example.png").string(), val_ds->get(0).image);
  }
  const driver::Precision& precision = setup.precision;
  // float16 needs loss scaling (its smallest normal is 6e-5); bfloat16 has float32's range.
  GradScaler scaler(driver::scaler_options(args, precision));
  const int64_t start = driver::resume_step(args, net, opt, world, &scaler);
  const int64_t iters = args.integer("iters"), num_classes = o.num_classes;
  const double w0 = args.number("w0"), sigma = args.number("sigma");
  const std::optional<int64_t> ignore = args.has("ignore-label") ? std::optional<int64_t>(args.integer("ignore-label")) : std::nullopt;
  UnetAugmentOptions aug;
  aug.elastic_sigma = args.number("elastic");
  LoaderOptions lo;
  lo.batch_size = args.integer("batch");
  lo.seed = seed;
  lo.workers = static_cast<int>(args.integer("workers"));
  lo.replicas = world.size;  // each rank its own shard of every epoch
  lo.rank = world.rank;
  DataLoader loader(train_ds, lo, [&](Sample s, DataRng& rng) {
    const Tensor ignored = take_ignored(s, ignore, num_classes);
    s.weight = unet_weight_map(s.mask, instances_of(s), num_classes, w0, sigma);
    if (ignored.defined()) {  // out of the loss: the target of padding, weight 0
      s.mask = where(ignored, -100.0, s.mask);
      s.weight = where(ignored, 0.0, s.weight);
    }
    return crop_tile(augment_unet(s, rng, aug), tile, rng);
  });
  driver::print_data_parallel(world, lo.batch_size, args.number("lr"));
  if (world.main())
  std::printf("U-Net: width %lld, depth %lld, %lld parameters, tile %lld -> %lld, %s, %lld CPU threads; %lld training / %lld "
              "validation images\n",
              (long long)o.width, (long long)o.depth, (long long)net.num_parameters(), (long long)tile.in, (long long)tile.out,
              dev.str().c_str(), (long long)num_threads(), (long long)train_ds->size(), (long long)val_ds->size());
  driver::JsonLines metrics(world.main() ? (out / "metrics.jsonl").string() : std::string(), start > 0);
  const driver::Clock clock;
  // A resumed run continues the epoch where the checkpoint stopped (its step's batch).
  const int64_t per_epoch = std::max<int64_t>(1, loader.batches_per_epoch());
  int64_t epoch = start / per_epoch, images = 0;
  loader.start_epoch(epoch, start % per_epoch);
  double loss_sum = 0;
  int64_t loss_n = 0, skipped = 0;
  ValResult last_val;
  for (int64_t step = start; step < iters; ++step) {
    const std::vector<Sample> batch = driver::next_batch(loader, epoch);
    std::vector<Tensor> xs, ts, ws;
    for (const Sample& s : batch) {
      xs.push_back(s.image);
      ts.push_back(s.mask);
      ws.push_back(s.weight);
    }
    Tensor x = stack(xs).to(dev), t = stack(ts).to(dev), w = stack(ws).to(dev);
    opt.set_lr(schedule.lr(args.number("lr"), step));
    opt.zero_grad();
    Tensor loss;
    {
      std::optional<AutocastGuard> amp;
      precision.enter(amp, dev);
      loss = pixel_weighted_cross_entropy(net.forward(x), t, w);  // float32 (the loss is on autocast's float32 list)
    }
    scaler.scale(loss).backward();
    if (ddp) ddp->finish();  // every rank now holds the gradient of the global batch
    if (clip > 0) {
      scaler.unscale_(opt);
      clip_grad_norm(net.parameters(), clip);
    }
    const bool stepped = scaler.step(opt);  // fp16: skipped when a gradient overflowed
    scaler.update();
    const double l = loss.item<float>();
    if (!stepped) {
      ++skipped;
    } else {
      TS_CHECK(std::isfinite(l), "train_unet: the loss became ", l, " at step ", step, " (try a lower --lr or --warmup)");
      loss_sum += l;
      ++loss_n;
    }
    images += static_cast<int64_t>(batch.size());
    const bool last = step + 1 == iters;
    if ((step + 1) % args.integer("log-every") == 0 || last) {
      if (world.distributed) {  // the loss over every rank's samples (every rank loads as many images)
        Tensor totals = from_vector<double>({loss_sum, static_cast<double>(loss_n)});
        dist::all_reduce(totals);
        loss_sum = totals.to_vector<double>()[0];
        loss_n = static_cast<int64_t>(totals.to_vector<double>()[1]);
      }
      const double secs = clock.seconds(), rate = static_cast<double>(images * world.size) / std::max(secs, 1e-9);
      const double eta = clock.eta(step + 1 - start, iters - step - 1);
      const double mean_loss = loss_n > 0 ? loss_sum / static_cast<double>(loss_n) : NAN;
      if (world.main()) {
        std::printf("iter %6lld/%lld | loss %.4f | %.2f img/s | lr %.2e | elapsed %s | eta %s", (long long)(step + 1),
                    (long long)iters, mean_loss, rate, opt.lr(), cli::format_duration(secs).c_str(),
                    cli::format_duration(eta).c_str());
        if (scaler.enabled()) std::printf(" | loss scale %g, %lld steps skipped", scaler.get_scale(), (long long)skipped);
        std::printf("\n");
      }
      if (args.has("verbose") && world.main()) std::printf("  %s\n", driver::memory_line(dev).c_str());
      std::fflush(stdout);
      std::map<std::string, double> m{{"iter", double(step + 1)}, {"loss", mean_loss}, {"images_per_s", rate}, {"lr", opt.lr()},
                                      {"elapsed_s", secs}};
      if (scaler.enabled()) {
        m["loss_scale"] = scaler.get_scale();
        m["skipped_steps"] = double(skipped);
      }
      metrics.write(m, {{"precision", precision.name}});
      loss_sum = 0;
      loss_n = 0;
    }
    if (((step + 1) % args.integer("val-every") == 0 || last) && world.main()) {  // rank 0 validates
      {
        std::optional<AutocastGuard> amp;  // validation in the training precision
        precision.enter(amp, dev);
        last_val = validate(net, *val_ds, tile.out, dev, num_classes, ignore);
      }
      std::printf("  validation @%lld: IoU(cells) %.4f | Dice %.4f | pixel error %.4f | Rand error %.4f | cells %lld, "
                  "matched %lld, merged %lld, instance F1 %.3f\n",
                  (long long)(step + 1), last_val.iou_fg, last_val.dice_fg, last_val.pixel_err, last_val.rand_err,
                  (long long)last_val.cells, (long long)last_val.matched, (long long)last_val.merged, last_val.f1);
      std::printf("    challenges: CTC SEG %.4f, DET %.4f | ISBI V_Rand %.4f, V_Info %.4f (thinned, best of 11 thresholds)\n",
                  last_val.seg, last_val.det, last_val.v_rand, last_val.v_info);
      if (ignore) std::printf("  (%lld pixels of label %lld left out)\n", (long long)last_val.ignored, (long long)*ignore);
      std::fflush(stdout);
      metrics.write({{"iter", double(step + 1)}, {"val_iou", last_val.iou_fg}, {"val_dice", last_val.dice_fg},
                     {"val_pixel_error", last_val.pixel_err}, {"val_rand_error", last_val.rand_err},
                     {"val_instance_f1", last_val.f1}, {"val_cells", double(last_val.cells)},
                     {"val_matched", double(last_val.matched)}, {"val_merged", double(last_val.merged)},
                     {"val_ignored_pixels", double(last_val.ignored)}, {"val_seg", last_val.seg}, {"val_det", last_val.det},
                     {"val_v_rand", last_val.v_rand}, {"val_v_info", last_val.v_info}});
      write_png((out / ("preview_" + std::to_string(step + 1) + ".png")).string(), last_val.preview);
    }
    if (((step + 1) % args.integer("save-every") == 0 || last) && world.main()) {
      // The replicas are equal: rank 0's checkpoint resumes on any number of ranks.
      TrainingState st{step + 1, driver::unet_metadata(o)};
      st.extra["unet.tile"] = std::to_string(tile.in);
      st.extra["train_precision"] = precision.name;
      save_checkpoint((out / "checkpoint.safetensors").string(), net, opt, st, &scaler);
    }
  }
  if (!world.main()) {
    dist::finalize();
    return 0;
  }
  auto meta = driver::unet_metadata(o);
  meta["unet.tile"] = std::to_string(tile.in);
  meta["train_precision"] = precision.name;  // the weights themselves are float32
  save_module(net, (out / "model.safetensors").string(), meta);
  driver::write_json((out / "summary.json").string(), {{"iters", double(iters)}, {"seconds", clock.seconds()}, {"val_iou", last_val.iou_fg}, {"val_dice", last_val.dice_fg},
                 {"val_rand_error", last_val.rand_err}, {"val_instance_f1", last_val.f1}, {"val_merged", double(last_val.merged)},
                 {"val_seg", last_val.seg}, {"val_det", last_val.det}, {"val_v_rand", last_val.v_rand}, {"val_v_info", last_val.v_info},
                 {"parameters", double(net.num_parameters())}},
                {{"model", (out / "model.safetensors").string()}, {"precision", precision.name}});
  std::printf("done in %s: validation IoU(cells) %.4f, instance F1 %.3f (%lld of %lld cells matched, %lld merged). Model: %s\n",
              cli::format_duration(clock.seconds()).c_str(), last_val.iou_fg, last_val.f1, (long long)last_val.matched,
              (long long)last_val.cells, (long long)last_val.merged, (out / "model.safetensors").string().c_str());
  dist::finalize();
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tessera::driver::guarded_main(argc, argv, run); }
