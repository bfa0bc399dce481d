// Autocast: which dtype each op runs in under an AutocastGuard (autograd/autocast.h), that float64
// and integers are left alone, that parameters' gradients stay float32, and that the state is
// scoped and per thread.
#include <thread>

#include "test_helpers.h"

namespace tessera::test {
namespace {

struct Inputs {
  Tensor x = randn({2, 3, 10, 10});
  Tensor w = randn({4, 3, 3, 3}) * 0.2;
  Tensor b = randn({4});
  Tensor m = randn({5, 7});
  Tensor n = randn({7, 3});
  Tensor target = randint(0, 4, {2, 8, 8});
};

TEST(Autocast, EachOpRunsInItsListsDtype) {
  for (DType low : {kBFloat16, kFloat16}) {
    Inputs in;
    AutocastGuard amp(low);
    EXPECT_TRUE(autocast_enabled());
    EXPECT_EQ(autocast_dtype(), low);
    // The low list: float32 inputs are cast, the result is low.
    const Tensor y = conv2d(in.x, in.w, in.b);
    EXPECT_EQ(y.dtype(), low);
    EXPECT_EQ(conv2d_relu(in.x, in.w, in.b).dtype(), low);
    EXPECT_EQ(conv_transpose2d(in.x, randn({3, 2, 2, 2}), Tensor(), 2).dtype(), low);
    EXPECT_EQ(matmul(in.m, in.n).dtype(), low);
    EXPECT_EQ(mm(in.m, in.n).dtype(), low);
    EXPECT_EQ(bmm(in.m.unsqueeze(0), in.n.unsqueeze(0)).dtype(), low);
    EXPECT_EQ(linear(in.m, in.n.t(), randn({3})).dtype(), low);
    // Ops that follow their input.
    EXPECT_EQ(relu(y).dtype(), low);
    EXPECT_EQ(max_pool2d(y, {2, 2}).dtype(), low);
    EXPECT_EQ(batch_norm(y, zeros({4}), ones({4}), ones({4}), zeros({4}), true, 0.1, 1e-5).dtype(), low);
    EXPECT_EQ(add(y, y).dtype(), low);
    EXPECT_EQ(add(y, in.b.reshape({1, 4, 1, 1})).dtype(), kFloat32);  // promotion, as without autocast
    // The float32 list: half inputs run in float32.
    EXPECT_EQ(softmax(y, 1).dtype(), kFloat32);
    EXPECT_EQ(log_softmax(y, 1).dtype(), kFloat32);
    EXPECT_EQ(exp(y).dtype(), kFloat32);
    EXPECT_EQ(log(abs(y)).dtype(), kFloat32);
    EXPECT_EQ(sum(y).dtype(), kFloat32);
    EXPECT_EQ(group_norm(y, 2, Tensor(), Tensor()).dtype(), kFloat32);
    EXPECT_EQ(interpolate(y, Int2{16, 16}, "bilinear").dtype(), kFloat32);
    EXPECT_EQ(cross_entropy(y, in.target).dtype(), kFloat32);
    EXPECT_EQ(binary_cross_entropy_with_logits(y, zeros_like(y)).dtype(), kFloat32);
    // Always float32 inside, the features' dtype out (torchvision's roi_align autocast).
    const Tensor rois = from_vector<float>({0, 1, 1, 6, 6, 1, 0, 2, 5, 7}, {2, 5});
    EXPECT_EQ(roi_align(y, rois, Int2{2, 2}, 1.0, 2, true).dtype(), low);
    // float64 and integers are never cast.
    EXPECT_EQ(conv2d(in.x.to(kFloat64), in.w.to(kFloat64)).dtype(), kFloat64);
    EXPECT_EQ(matmul(in.m.to(kFloat64), in.n.to(kFloat64)).dtype(), kFloat64);
    EXPECT_EQ(sum(in.target).dtype(), kInt64);
  }
  EXPECT_FALSE(autocast_enabled());
}

// The low ops compute what the same op computes on inputs rounded to the low dtype, rounded once.
TEST(Autocast, LowOpsEqualTheOpOnRoundedInputs) {
  Inputs in;
  Tensor got, want;
  {
    AutocastGuard amp(kBFloat16);
    got = conv2d(in.x, in.w, in.b);
  }
  want = conv2d(in.x.to(kBFloat16), in.w.to(kBFloat16), in.b.to(kBFloat16));
  EXPECT_TRUE(equal(got, want));
  {
    AutocastGuard amp(kFloat16);
    got = linear(in.m, in.n.t(), in.b.narrow(0, 0, 3));
  }
  want = add(matmul(in.m.to(kFloat16), in.n.to(kFloat16)), in.b.narrow(0, 0, 3).to(kFloat16));
  EXPECT_TRUE(equal(got, want));
}

TEST(Autocast, ParametersStayFloat32AndTheirGradientsToo) {
  Generator g(3);
  Conv2d conv(3, 4, 3, 1, 1, 1, 1, true, &g);
  Linear fc(4, 2, true, &g);
  const Tensor x = randn({2, 3, 6, 6}, kFloat32, &g);
  Tensor loss;
  {
    AutocastGuard amp(kBFloat16);
    Tensor h = relu(conv.forward(x));
    Tensor logits = fc.forward(mean(h, {2, 3}));
    EXPECT_EQ(logits.dtype(), kBFloat16);
    loss = cross_entropy(logits, from_vector<int64_t>({0, 1}));
  }
  EXPECT_EQ(loss.dtype(), kFloat32);
  loss.backward();
  for (const Tensor* p : {&conv.weight, &conv.bias, &fc.weight, &fc.bias}) {
    EXPECT_EQ(p->dtype(), kFloat32);
    ASSERT_TRUE(p->grad().defined());
    EXPECT_EQ(p->grad().dtype(), kFloat32);
    EXPECT_GT(sum(abs(p->grad())).item<float>(), 0.0f);
  }
}

TEST(Autocast, ScopedNestedAndPerThread) {
  EXPECT_FALSE(autocast_enabled());
  {
    AutocastGuard a(kBFloat16);
    {
      AutocastGuard off(kBFloat16, DeviceType::CPU, false);
      EXPECT_EQ(matmul(randn({2, 2}), randn({2, 2})).dtype(), kFloat32);
    }
    EXPECT_TRUE(autocast_enabled());
    EXPECT_FALSE(autocast_enabled(DeviceType::CUDA));  // per device type
    DType other = kBFloat16;
    std::thread t([&] { other = matmul(randn({2, 2}), randn({2, 2})).dtype(); });
    t.join();
    EXPECT_EQ(other, kFloat32);  // another thread has its own state
  }
  EXPECT_FALSE(autocast_enabled());
  EXPECT_THROW_MSG(AutocastGuard bad(kFloat32), "bfloat16 or float16");
}

}  // namespace
}  // namespace tessera::test
