// The autograd engine: graph shapes, accumulation, no-grad, detach, and its error cases.
#include "test_helpers.h"

namespace tessera {
namespace {

using test::close;

TEST(Autograd, DiamondGraphSumsBothPaths) {
  // y = a*x + b*x with x used twice: dy/dx = a + b.
  Tensor x = from_vector<double>({1.0, -2.0, 3.0}).requires_grad_();
  Tensor a = from_vector<double>({2.0, 3.0, 4.0}), b = from_vector<double>({-1.0, 0.5, 10.0});
  Tensor h = exp(x);  // shared node feeding both branches: d/dx = (a + b) * exp(x)
  Tensor y = sum(add(mul(h, a), mul(h, b)));
  y.backward();
  std::vector<double> g = x.grad().to_vector<double>();
  for (int i = 0; i < 3; ++i) {
    const double xi = std::vector<double>{1.0, -2.0, 3.0}[i];
    const double ai = std::vector<double>{2.0, 3.0, 4.0}[i], bi = std::vector<double>{-1.0, 0.5, 10.0}[i];
    EXPECT_NEAR(g[i], (ai + bi) * std::exp(xi), 1e-12);
  }
}

TEST(Autograd, DetachedBranchGetsNoGradient) {
  Tensor x = from_vector<double>({1.0, 2.0}).requires_grad_();
  Tensor y = sum(mul(x, x.detach()));  // d/dx treats the detached factor as a constant: = x
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1.0, 2.0}));
  EXPECT_FALSE(x.detach().requires_grad());
  EXPECT_EQ(x.detach().storage(), x.storage());
}

TEST(Autograd, GradientsAccumulateOverTwoBackwards) {
  Tensor x = from_vector<double>({1.0, 2.0}).requires_grad_();
  sum(mul(x, 3.0)).backward();
  sum(mul(x, x)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3.0 + 2.0, 3.0 + 4.0}));
  x.set_grad(Tensor());
  sum(x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1.0, 1.0}));
}

TEST(Autograd, SharedGradientBufferIsNotAliasedBetweenLeaves) {
  // a + b hands the same gradient tensor to both leaves; accumulating into one must not change the other.
  Tensor a = from_vector<double>({1.0}).requires_grad_(), b = from_vector<double>({2.0}).requires_grad_();
  sum(add(a, b)).backward(Tensor(), true);
  sum(mul(a, 5.0)).backward();
  EXPECT_EQ(a.grad().item<double>(), 6.0);
  EXPECT_EQ(b.grad().item<double>(), 1.0);
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = ones({2}).requires_grad_();
  {
    NoGradGuard guard;
    EXPECT_FALSE(GradMode::is_enabled());
    Tensor y = mul(x, 2.0);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    {
      EnableGradGuard enable;
      EXPECT_TRUE(mul(x, 2.0).requires_grad());
    }
  }
  EXPECT_TRUE(GradMode::is_enabled());
  EXPECT_TRUE(mul(x, 2.0).requires_grad());
}

TEST(Autograd, SecondBackwardThroughAFreedGraphIsAnError) {
  Tensor x = from_vector<double>({1.0, 2.0}).requires_grad_();
  Tensor y = sum(exp(x));
  y.backward();
  try {
    y.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("second time"), std::string::npos) << e.what();
  }
  // With retain_graph the second backward works and accumulates.
  Tensor z = from_vector<double>({0.5}).requires_grad_();
  Tensor w = sum(exp(z));
  w.backward(Tensor(), true);
  w.backward();
  EXPECT_NEAR(z.grad().item<double>(), 2 * std::exp(0.5), 1e-12);
}

TEST(Autograd, NonScalarBackwardNeedsAGradient) {
  Tensor x = from_vector<double>({1.0, 2.0}).requires_grad_();
  Tensor y = mul(x, x);
  EXPECT_THROW(y.backward(), Error);
  EXPECT_THROW(y.backward(ones({3}, kFloat64)), Error);
  y.backward(from_vector<double>({1.0, 10.0}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2.0, 40.0}));
  EXPECT_THROW(zeros({1}).backward(), Error);  // requires no grad
}

TEST(Autograd, InPlaceWriteToASavedTensorIsCaught) {
  Tensor x = from_vector<double>({1.0, 2.0}).requires_grad_();
  Tensor h = mul(x, 1.0);      // h is saved by exp's backward as its output...
  Tensor y = exp(h);
  Tensor s = sum(y);
  {
    NoGradGuard g;
    y.fill_(0.0);              // ...and here it is overwritten
  }
  EXPECT_THROW(s.backward(), Error);
}

TEST(Autograd, IntegerOutputsAndInputsCarryNoGradient) {
  Tensor x = from_vector<double>({3.0, 1.0, 2.0}).requires_grad_();
  auto [values, indices] = sort(x);
  EXPECT_TRUE(values.requires_grad());
  EXPECT_FALSE(indices.requires_grad());
  sum(mul(values, from_vector<double>({1.0, 10.0, 100.0}))).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{100.0, 1.0, 10.0}));
}

TEST(Autograd, MixedDtypeGradientComesBackInTheLeafDtype) {
  Tensor a = from_vector<float>({1.f, 2.f}).requires_grad_();
  Tensor b = from_vector<double>({3.0, 4.0}).requires_grad_();
  Tensor y = sum(mul(a, b));  // float64
  EXPECT_EQ(y.dtype(), kFloat64);
  y.backward();
  EXPECT_EQ(a.grad().dtype(), kFloat32);
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{3.f, 4.f}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{1.0, 2.0}));
}

TEST(Autograd, BroadcastGradientsReduceToTheInputShape) {
  Tensor bias = from_vector<double>({1.0, 2.0, 3.0}).requires_grad_();
  Tensor x = ones({4, 3}, kFloat64);
  sum(add(x, bias)).backward();
  EXPECT_EQ(bias.grad().to_vector<double>(), (std::vector<double>{4.0, 4.0, 4.0}));
}

TEST(Autograd, LeafFlagsAndGradFn) {
  Tensor x = ones({2}).requires_grad_();
  EXPECT_TRUE(x.is_leaf());
  Tensor y = relu(x);
  EXPECT_FALSE(y.is_leaf());
  ASSERT_NE(y.grad_fn(), nullptr);
  EXPECT_EQ(y.grad_fn()->name(), "ReluBackward");
  EXPECT_THROW(y.requires_grad_(false), Error);  // not a leaf
}

TEST(Autograd, DeepChainDoesNotRecurse) {
  // 200000 nodes in a line: the engine walks and frees the graph iteratively, so no stack overflow.
  Tensor x = from_vector<double>({1.0}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 200000; ++i) y = add(y, 1e-3);
  sum(y).backward();
  EXPECT_EQ(x.grad().item<double>(), 1.0);
  y = Tensor();  // drops the whole chain
  Tensor z = x;
  for (int i = 0; i < 200000; ++i) z = mul(z, 1.0);
  z = Tensor();  // a graph that never ran backward is freed the same way
}

TEST(Gradcheck, CatchesAWrongGradient) {
  // A function whose recorded backward is deliberately wrong: x * 2 in forward, gradient of x * 3.
  auto wrong = [](const std::vector<Tensor>& in) {
    Tensor x = in[0];
    Tensor out = add(mul(x.detach(), 2.0), mul(sub(x, x.detach()), 3.0));
    return out;
  };
  Tensor x = from_vector<double>({0.3, -0.7}).requires_grad_();
  GradcheckResult r = gradcheck(wrong, {x});
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.message.empty());
  auto right = [](const std::vector<Tensor>& in) { return mul(in[0], 2.0); };
  EXPECT_TRUE(gradcheck(right, {x}).ok);
  EXPECT_THROW(gradcheck(right, {from_vector<float>({1.f}).requires_grad_()}), Error);
}

}  // namespace
}  // namespace tessera
