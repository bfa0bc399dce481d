// GradScaler against PyTorch's rule, written out here step by step: the skipped steps, the
// backoff, the growth after growth_interval clean steps, the unscaled gradients, and a resume
// from a checkpoint that continues bit-identically.
#include <cmath>
#include <filesystem>

#include "core/view.h"
#include "test_helpers.h"

namespace tessera::test {
namespace {

// One parameter w (a Linear's weight [1, 3], ones); loss = sum(w * x) so that grad = x exactly,
// and x is chosen per step.
struct Toy {
  Linear model{3, 1, false};
  Tensor& w = model.weight;
  SGD opt{{w}, SGDOptions{0.5}};
  Toy() {
    NoGradGuard g;
    raw::fill_(w, 1.0);
  }
  bool run(GradScaler& s, const std::vector<float>& x) {
    opt.zero_grad();
    Tensor loss = sum(mul(w, from_vector<float>(x)));
    s.scale(loss).backward();
    const bool stepped = s.step(opt);
    s.update();
    return stepped;
  }
};

TEST(GradScaler, SkipsOverflowingStepsBacksOffAndGrows) {
  GradScalerOptions o;
  o.growth_interval = 3;
  GradScaler s(o);
  EXPECT_EQ(s.get_scale(), 65536.0);
  Toy t;
  // 1e35 * 65536 overflows float32: the step is skipped, the scale halves, w is unchanged.
  EXPECT_FALSE(t.run(s, {1e35f, 0.f, 0.f}));
  EXPECT_EQ(s.get_scale(), 32768.0);
  EXPECT_EQ(t.w.to_vector<float>(), (std::vector<float>{1.f, 1.f, 1.f}));
  EXPECT_FALSE(t.run(s, {1e35f, 0.f, 0.f}));  // 1e35 * 32768 overflows too
  EXPECT_EQ(s.get_scale(), 16384.0);
  EXPECT_FALSE(t.run(s, {NAN, 1.f, 1.f}));
  EXPECT_EQ(s.get_scale(), 8192.0);
  // Clean steps: the gradient the optimizer sees is the unscaled one (x), w -= 0.5 x.
  EXPECT_TRUE(t.run(s, {2.f, -4.f, 0.25f}));
  EXPECT_EQ(t.w.to_vector<float>(), (std::vector<float>{0.f, 3.f, 0.875f}));
  EXPECT_EQ(s.growth_tracker(), 1);
  EXPECT_TRUE(t.run(s, {0.f, 0.f, 0.f}));
  EXPECT_EQ(s.get_scale(), 8192.0);
  EXPECT_TRUE(t.run(s, {0.f, 0.f, 0.f}));  // the third clean step in a row: doubles
  EXPECT_EQ(s.get_scale(), 16384.0);
  EXPECT_EQ(s.growth_tracker(), 0);
}

TEST(GradScaler, UnscaleOnceLetsTheCallerClipTrueGradients) {
  GradScaler s;
  Toy t;
  t.opt.zero_grad();
  s.scale(sum(mul(t.w, from_vector<float>({3.f, 4.f, 0.f})))).backward();
  EXPECT_EQ(t.w.grad().to_vector<float>()[0], 3.f * 65536.f);
  s.unscale_(t.opt);
  EXPECT_EQ(t.w.grad().to_vector<float>(), (std::vector<float>{3.f, 4.f, 0.f}));
  EXPECT_NEAR(clip_grad_norm({t.w}, 1.0), 5.0, 1e-6);
  EXPECT_THROW_MSG(s.unscale_(t.opt), "already called");
  EXPECT_TRUE(s.step(t.opt));  // does not unscale twice
  EXPECT_NEAR(t.w.to_vector<float>()[0], 1.0f - 0.5f * 0.6f, 1e-6);
  s.update();
}

TEST(GradScaler, DisabledIsThePlainStep) {
  GradScalerOptions o;
  o.enabled = false;
  GradScaler s(o);
  Toy t;
  EXPECT_TRUE(t.run(s, {1.f, 2.f, 3.f}));
  EXPECT_EQ(t.w.to_vector<float>(), (std::vector<float>{0.5f, 0.f, -0.5f}));
}

TEST(GradScaler, ResumesFromACheckpointBitIdentically) {
  const std::string path = (std::filesystem::temp_directory_path() / "tessera_scaler.ckpt").string();
  auto steps = [](Toy& t, GradScaler& s, int from, int to) {
    for (int i = from; i < to; ++i) {
      const float big = i % 4 == 1 ? 1e36f : 1.0f;  // every fourth step overflows
      t.run(s, {big * 0.1f * static_cast<float>(i), -0.3f, 0.7f});
    }
  };
  GradScalerOptions o;
  o.growth_interval = 2;
  Toy a;
  GradScaler sa(o);
  steps(a, sa, 0, 7);
  save_checkpoint(path, a.model, a.opt, TrainingState{7, {}}, &sa);
  const double scale_at_save = sa.get_scale();
  const int64_t tracker_at_save = sa.growth_tracker();
  steps(a, sa, 7, 14);
  Toy b;
  GradScaler sb(o);
  load_checkpoint(path, b.model, b.opt, &sb);
  EXPECT_EQ(sb.get_scale(), scale_at_save);
  EXPECT_EQ(sb.growth_tracker(), tracker_at_save);
  EXPECT_NE(scale_at_save, 65536.0);  // the run did move the scale
  steps(b, sb, 7, 14);
  EXPECT_TRUE(equal(b.w, a.w));
  EXPECT_EQ(sb.get_scale(), sa.get_scale());
  EXPECT_EQ(sb.growth_tracker(), sa.growth_tracker());
}

TEST(GradScaler, BadStateIsRefused) {
  GradScaler s;
  EXPECT_THROW_MSG(s.load_state_tensors({{"scale", full({}, -1.0)}, {"growth_tracker", full({}, 0, kInt64)}}), "positive");
  EXPECT_THROW_MSG(s.load_state_tensors({{"scale", full({}, 2.0)}}), "growth_tracker");
  EXPECT_THROW_MSG(GradScaler(GradScalerOptions{0.0}), "init_scale");
}

}  // namespace
}  // namespace tessera::test
