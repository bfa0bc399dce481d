// Modules, optimizers, schedules and checkpoints, against PyTorch fixtures (scripts/make_fixtures.py).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "layers/layers.h"
#include "optim/checkpoint.h"
#include "optim/schedule.h"
#include "test_helpers.h"

namespace tessera {
namespace {

using test::close;

Tensor fixture(const std::string& config, const std::string& name) {
  return load_npy(test::data_path("torch/modules/" + config + "/" + name + ".npy"));
}

// The PyTorch SmallNet of scripts/make_fixtures.py.
class SmallNet : public Module {
 public:
  SmallNet() {
    conv = register_module("conv", std::make_shared<Conv2d>(3, 4, 3, 1, 1));
    bn = register_module("bn", std::make_shared<BatchNorm2d>(4));
    fc = register_module("fc", std::make_shared<Linear>(64, 5));
  }
  Tensor forward(const Tensor& x) override {
    return fc->forward(max_pool2d(relu(bn->forward(conv->forward(x))), 2).flatten(1));
  }
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
  std::shared_ptr<Linear> fc;
};

TEST(Module, StateDictNamesAndOrderFollowPyTorch) {
  SmallNet net;
  std::vector<std::string> names;
  for (auto& [k, v] : net.state_dict()) names.push_back(k);
  EXPECT_EQ(names, (std::vector<std::string>{"conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
                                             "bn.running_var", "bn.num_batches_tracked", "fc.weight", "fc.bias"}));
  EXPECT_EQ(net.named_parameters().size(), 6u);
  EXPECT_EQ(net.num_parameters(), 4 * 3 * 9 + 4 + 4 + 4 + 5 * 64 + 5);
  for (const Tensor& p : net.parameters()) EXPECT_TRUE(p.requires_grad() && p.is_leaf());
  for (auto& [k, b] : net.named_buffers()) EXPECT_FALSE(b.requires_grad()) << k;
}

TEST(Module, ForwardAndEveryGradientMatchPyTorch) {
  SmallNet net;
  LoadResult r = load_module(net, test::data_path("torch/modules/small_net.safetensors"));
  EXPECT_TRUE(r.ok());
  net.train();
  Tensor x = fixture("small_net", "x"), target = fixture("small_net", "target");
  Tensor logits = net.forward(x);
  EXPECT_TRUE(close(logits, fixture("small_net", "logits"), 1e-5, 1e-5));
  Tensor loss = cross_entropy(logits, target);
  EXPECT_TRUE(close(loss, fixture("small_net", "loss"), 1e-5, 1e-5));
  loss.backward();
  for (auto& [k, p] : net.named_parameters())
    EXPECT_TRUE(close(p.grad(), fixture("small_net", "grad." + k), 1e-5, 1e-5)) << k;
  // Running statistics after one training-mode forward, and num_batches_tracked.
  for (auto& [k, b] : net.named_buffers()) EXPECT_TRUE(close(b, fixture("small_net", "after." + k), 1e-5, 1e-5)) << k;
  net.eval();
  NoGradGuard g;
  EXPECT_TRUE(close(net.forward(x), fixture("small_net", "eval_logits"), 1e-5, 1e-5));
}

// state_dict() and load_state_dict() take the same type; a name given twice is an Error.
TEST(Module, StateDictLoadsBackAsItIs) {
  manual_seed(2);
  Linear a(5, 3), b(5, 3);
  EXPECT_TRUE(b.load_state_dict(a.state_dict()).ok());
  EXPECT_TRUE(test::equal(b.weight.detach(), a.weight.detach()));
  EXPECT_TRUE(test::equal(b.bias.detach(), a.bias.detach()));
  NamedTensors twice = a.state_dict();
  twice.push_back(twice.front());
  EXPECT_THROW(b.load_state_dict(twice), Error);
}

TEST(Module, LoadStateDictReportsMissingUnexpectedAndMismatches) {
  SmallNet net;
  std::map<std::string, Tensor> sd = net.state_dict_map();
  sd.erase("fc.bias");
  sd["extra.weight"] = zeros({1});
  EXPECT_THROW(net.load_state_dict(sd, true), Error);
  LoadResult r = net.load_state_dict(sd, false);
  EXPECT_EQ(r.missing_keys, std::vector<std::string>{"fc.bias"});
  EXPECT_EQ(r.unexpected_keys, std::vector<std::string>{"extra.weight"});
  sd = net.state_dict_map();
  sd["conv.weight"] = zeros({4, 3, 5, 5});
  try {
    net.load_state_dict(sd, false);
    FAIL() << "a size mismatch must be an error even when not strict";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("size mismatch for conv.weight"), std::string::npos) << e.what();
  }
  // Loading copies in place: the handles (what an optimizer holds) stay the same tensors.
  Tensor before = net.conv->weight;
  sd = net.state_dict_map();
  sd["conv.weight"] = ones({4, 3, 3, 3}, kFloat64);  // converted to float32
  net.load_state_dict(sd);
  EXPECT_TRUE(before.is_same(net.conv->weight));
  EXPECT_EQ(sum(net.conv->weight).item<float>(), 108.f);
}

TEST(Module, FrozenBatchNormLoadsABatchNormCheckpointAndMatchesItsEvalForward) {
  // A BatchNorm2d state (with num_batches_tracked) loads into FrozenBatchNorm2d, as torchvision's
  // pretrained detection backbones do, and the frozen layer computes the BatchNorm's eval forward.
  BatchNorm2d bn(5);
  Generator g(4);
  NoGradGuard no_grad;
  bn.weight.copy_(uniform({5}, 0.5, 1.5, kFloat32, &g));
  bn.bias.copy_(randn({5}, kFloat32, &g));
  bn.running_mean.copy_(randn({5}, kFloat32, &g));
  bn.running_var.copy_(uniform({5}, 0.2, 3.0, kFloat32, &g));
  FrozenBatchNorm2d frozen(5);
  const LoadResult r = frozen.load_state_dict(bn.state_dict_map());
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(frozen.state_dict().size(), 4u);  // the counter is dropped, not kept
  bn.eval();
  Tensor x = randn({2, 5, 3, 4}, kFloat32, &g);
  EXPECT_TRUE(close(frozen.forward(x), bn.forward(x), 1e-6, 1e-6));
  // Other unexpected keys are still errors.
  auto sd = bn.state_dict_map();
  sd["num_batches"] = zeros({1});
  EXPECT_THROW(frozen.load_state_dict(sd), Error);
}

TEST(Module, TrainEvalZeroGradToDtypeAndSequential) {
  auto seq = std::make_shared<Sequential>();
  seq->push_back(std::make_shared<Linear>(3, 4));
  seq->push_back(std::make_shared<ReLU>());
  seq->push_back(std::make_shared<Dropout>(0.5));
  seq->push_back(std::make_shared<Linear>(4, 2, false));
  EXPECT_EQ(seq->state_dict().size(), 3u);
  EXPECT_EQ(seq->state_dict()[2].first, "3.weight");
  seq->eval();
  EXPECT_FALSE((*seq)[2]->is_training());
  Tensor x = randn({5, 3});
  EXPECT_TRUE(test::equal(seq->forward(x), seq->forward(x)));  // dropout inactive
  sum(seq->forward(x)).backward();
  EXPECT_TRUE(seq->parameters()[0].grad().defined());
  seq->zero_grad();
  EXPECT_FALSE(seq->parameters()[0].grad().defined());
  seq->to(kFloat64);
  EXPECT_EQ(seq->parameters()[0].dtype(), kFloat64);
  EXPECT_TRUE(seq->parameters()[0].requires_grad());
  EXPECT_EQ(seq->forward(x.to(kFloat64)).dtype(), kFloat64);
  EXPECT_THROW(Conv2d(3, 4, 3, 1, 0, 1, 2), Error);  // 3 channels, 2 groups
  EXPECT_THROW(Linear(0, 3), Error);
}

TEST(Init, DefaultsAndHeFollowTheirDistributions) {
  Generator g(3);
  Conv2d conv(64, 128, 3, 1, 1, 1, 1, true, &g);  // fan_in 576: U(+-1/24)
  std::vector<float> w = conv.weight.to_vector<float>();
  const float bound = 1.0f / 24.0f;
  double m = 0, v = 0;
  for (float f : w) {
    ASSERT_LE(std::fabs(f), bound);
    m += f;
    v += f * f;
  }
  m /= static_cast<double>(w.size());
  EXPECT_NEAR(m, 0.0, 1e-3);
  EXPECT_NEAR(v / static_cast<double>(w.size()), bound * bound / 3.0, bound * bound * 0.02);
  Tensor t = empty({256, 64, 3, 3});
  init::unet_normal_(t, &g);  // std sqrt(2 / 576)
  const double s = std::sqrt(var(t).item<float>());
  EXPECT_NEAR(s, std::sqrt(2.0 / 576.0), 0.01 * std::sqrt(2.0 / 576.0));
  init::kaiming_normal_(t, "fan_out", &g);  // std sqrt(2 / (256 * 9))
  EXPECT_NEAR(std::sqrt(var(t).item<float>()), std::sqrt(2.0 / 2304.0), 0.01 * std::sqrt(2.0 / 2304.0));
}

// ---- optimizers and schedules

TEST(Optim, UpdatesMatchTorchOptim) {
  struct Case {
    std::string name;
    std::function<std::unique_ptr<Optimizer>(Tensor)> make;
  };
  std::vector<Case> cases = {
      {"sgd", [](Tensor p) { return std::make_unique<SGD>(std::vector<Tensor>{p}, SGDOptions{0.1}); }},
      {"sgd_momentum_wd", [](Tensor p) { return std::make_unique<SGD>(std::vector<Tensor>{p}, SGDOptions{0.05, 0.9, 0.1, 0.01}); }},
      {"sgd_nesterov", [](Tensor p) { return std::make_unique<SGD>(std::vector<Tensor>{p}, SGDOptions{0.05, 0.99, 0.0, 0.0, true}); }},
      {"adam", [](Tensor p) { return std::make_unique<Adam>(std::vector<Tensor>{p}, AdamOptions{0.01, 0.8, 0.95, 1e-6, 0.02}); }},
      {"adamw", [](Tensor p) { return make_adamw({p}, AdamOptions{0.01, 0.9, 0.999, 1e-8, 0.1}); }},
  };
  for (const Case& c : cases) {
    Tensor p = fixture("optim_" + c.name, "p0").requires_grad_();
    Tensor grads = fixture("optim_" + c.name, "grads"), steps = fixture("optim_" + c.name, "steps");
    auto opt = c.make(p);
    for (int64_t s = 0; s < 5; ++s) {
      p.set_grad(grads.select(0, s).contiguous());
      opt->step();
      EXPECT_TRUE(close(p, steps.select(0, s).contiguous(), 1e-6, 1e-6)) << c.name << " step " << s;
    }
  }
}

TEST(Optim, SchedulesMatchTorchSchedulers) {
  Tensor f;
  auto check = [](const Schedule& s, const Tensor& want, const char* name) {
    const std::vector<double> w = want.to_vector<double>();
    for (int64_t t = 0; t < 30; ++t) EXPECT_NEAR(s.lr(0.5, t), w[t], 1e-12) << name << " at " << t;
  };
  check(Schedule::warmup_linear(10, 0.001), fixture("schedules", "warmup_linear"), "warmup_linear");
  check(Schedule::multi_step({8, 20}, 0.1), fixture("schedules", "multi_step"), "multi_step");
  check(Schedule::cosine(25, 0.05 / 0.5), fixture("schedules", "cosine"), "cosine");
  check(Schedule::warmup_linear(5, 0.01) * Schedule::multi_step({12, 24}, 0.5), fixture("schedules", "warmup_then_multi_step"),
        "warmup_then_multi_step");
}

TEST(Optim, ClipGradNormMatchesTorch) {
  Tensor a = zeros({3, 3}).requires_grad_(), b = zeros({5}).requires_grad_();
  a.set_grad(fixture("clip_grad_norm", "g0"));
  b.set_grad(fixture("clip_grad_norm", "g1"));
  const double norm = clip_grad_norm({a, b}, 2.0);
  EXPECT_NEAR(norm, fixture("clip_grad_norm", "norm").item<float>(), 1e-5);
  EXPECT_TRUE(close(a.grad(), fixture("clip_grad_norm", "c0"), 1e-6, 1e-6));
  EXPECT_TRUE(close(b.grad(), fixture("clip_grad_norm", "c1"), 1e-6, 1e-6));
  EXPECT_THROW(clip_grad_norm({a}, 0.0), Error);
}

TEST(Optim, BadArguments) {
  Tensor p = zeros({2}).requires_grad_();
  EXPECT_THROW(SGD({p}, SGDOptions{-0.1}), Error);
  EXPECT_THROW(SGD({p}, SGDOptions{0.1, 0.0, 0.0, 0.0, true}), Error);  // nesterov without momentum
  EXPECT_THROW(Adam({p}, AdamOptions{0.1, 1.0}), Error);
  EXPECT_THROW(SGD({mul(p, 2.0)}, SGDOptions{0.1}), Error);  // not a leaf
}

// ---- checkpoints

std::string scratch(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("tessera_ckpt_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

// One training step of SmallNet with dropout on the logits (so the RNG state matters).
void train_step(SmallNet& net, Optimizer& opt, int64_t step) {
  Generator data(1000 + static_cast<uint64_t>(step));
  Tensor x = randn({2, 3, 8, 8}, kFloat32, &data), t = randint(0, 5, {2}, kInt64, &data);
  opt.zero_grad();
  cross_entropy(dropout(net.forward(x), 0.2), t).backward();
  opt.set_lr(Schedule::warmup_linear(3, 0.1).lr(0.05, step));
  opt.step();
}

TEST(Checkpoint, ResumingContinuesBitIdentically) {
  const int64_t N = 4, M = 3;
  manual_seed(42);
  SmallNet straight;
  SGD opt_a(straight.parameters(), SGDOptions{0.05, 0.9});
  for (int64_t s = 0; s < N + M; ++s) train_step(straight, opt_a, s);

  manual_seed(42);
  SmallNet first;
  SGD opt_b(first.parameters(), SGDOptions{0.05, 0.9});
  for (int64_t s = 0; s < N; ++s) train_step(first, opt_b, s);
  const std::string path = scratch("run.safetensors");
  save_checkpoint(path, first, opt_b, TrainingState{N, {{"note", "resume test"}}});
  manual_seed(7);  // disturb the generator: the checkpoint must restore it

  SmallNet resumed;
  SGD opt_c(resumed.parameters(), SGDOptions{0.05, 0.9});
  TrainingState st = load_checkpoint(path, resumed, opt_c);
  EXPECT_EQ(st.step, N);
  EXPECT_EQ(st.extra.at("note"), "resume test");
  for (int64_t s = st.step; s < N + M; ++s) train_step(resumed, opt_c, s);
  auto a = straight.state_dict(), c = resumed.state_dict();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(test::equal(c[i].second, a[i].second)) << a[i].first;
}

TEST(Checkpoint, BadFilesAreRejected) {
  SmallNet net;
  SGD opt(net.parameters(), SGDOptions{0.1});
  const std::string model_only = scratch("model.safetensors");
  save_module(net, model_only);
  EXPECT_THROW(load_checkpoint(model_only, net, opt), Error);  // no "model." prefix, no metadata
  EXPECT_THROW(load_checkpoint(scratch("missing.safetensors"), net, opt), Error);
  std::ofstream(scratch("garbage.safetensors")) << "not a checkpoint";
  EXPECT_THROW(load_checkpoint(scratch("garbage.safetensors"), net, opt), Error);
  EXPECT_TRUE(load_module(net, model_only).ok());
}

}  // namespace
}  // namespace tessera
