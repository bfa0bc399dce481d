// The CPU's bfloat16 convolutions and products (tessera's bfloat16 kernels, cpu_bf16_kernels():
// the vdpbf16ps GEMM where the CPU has AVX512-BF16, the same kernels over a widening GEMM
// elsewhere) against float64 on the same bfloat16 values: forward and both gradients, over the
// shapes that take different paths (im2col bands, pointwise, strided, dilated, grouped, padded,
// transposed) and the fused epilogues, with bfloat16 Winograd off (these are the direct kernels).
// The bound is the op table's for bfloat16: one rounding of the result (2^-8 relative) plus as much
// absolutely. Winograd's larger error is bounded apart.
#include "kernels/cpu/gemm_bf16.h"
#include "test_helpers.h"

namespace tessera::test {
namespace {

// The bfloat16 kernels on, Winograd for bfloat16 as asked; both restored afterwards.
class Bf16KernelsOn {
 public:
  explicit Bf16KernelsOn(bool winograd = false) : kernels_(cpu_bf16_kernels()), winograd_(cpu_winograd_bf16()) {
    set_cpu_bf16_kernels(true);
    set_cpu_winograd_bf16(winograd);
  }
  ~Bf16KernelsOn() {
    set_cpu_bf16_kernels(kernels_);
    set_cpu_winograd_bf16(winograd_);
  }

 private:
  bool kernels_, winograd_;
};

struct Geometry {
  const char* name;
  Shape x;
  int64_t O, k, stride, pad, dil, groups;
  bool transposed;
};

constexpr double kEps = 1.0 / 128;  // bfloat16's unit roundoff x 2, as the op table

Tensor bf16_randn(const Shape& s, Generator* gen) { return randn(s, kFloat32, gen).to(kBFloat16); }

TEST(ConvBf16Kernels, MatchFloat64OnTheSameValues) {
  Bf16KernelsOn on;
  GTEST_LOG_(INFO) << "bfloat16 GEMM: " << cpu::gemm_bf16_kernel_name();
  const Geometry cases[] = {
      {"3x3 pad 1 (Winograd's shape, run direct)", {2, 16, 12, 13}, 24, 3, 1, 1, 1, 1, false},
      {"3x3 valid, one input channel (U-Net's first)", {1, 1, 20, 19}, 16, 3, 1, 0, 1, 1, false},
      {"1x1 (pointwise: the input is the column matrix)", {2, 32, 9, 7}, 20, 1, 1, 0, 1, 1, false},
      {"3x3 stride 2", {1, 8, 15, 16}, 12, 3, 2, 1, 1, 1, false},
      {"3x3 dilation 2", {1, 6, 14, 14}, 10, 3, 1, 2, 2, 1, false},
      {"7x7 stride 2 pad 3 (ResNet's stem)", {1, 3, 23, 22}, 8, 7, 2, 3, 1, 1, false},
      {"grouped 3x3", {2, 12, 10, 10}, 18, 3, 1, 1, 1, 3, false},
      {"transposed 2x2 stride 2 (U-Net's up-convolution)", {2, 16, 7, 9}, 8, 2, 2, 0, 1, 1, true},
      {"transposed 3x3 stride 2 pad 1 (overlapping)", {1, 10, 6, 7}, 6, 3, 2, 1, 1, 1, true},
  };
  Generator gen(5);
  for (const Geometry& c : cases) {
    const int64_t cin = c.x[1];
    const Shape ws = c.transposed ? Shape{cin, c.O / c.groups, c.k, c.k} : Shape{c.O, cin / c.groups, c.k, c.k};
    Tensor x = bf16_randn(c.x, &gen), w = bf16_randn(ws, &gen), b = bf16_randn({c.O}, &gen);
    auto run = [&](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
      return c.transposed ? conv_transpose2d(xi, wi, bi, c.stride, c.pad, 0, c.groups, c.dil)
                          : conv2d(xi, wi, bi, c.stride, c.pad, c.dil, c.groups);
    };
    Tensor x16 = x.clone().requires_grad_(), w16 = w.clone().requires_grad_();
    Tensor x64 = x.to(kFloat64).requires_grad_(), w64 = w.to(kFloat64).requires_grad_();
    Tensor y16 = run(x16, w16, b), y64 = run(x64, w64, b.to(kFloat64));
    ASSERT_EQ(y16.dtype(), kBFloat16) << c.name;
    Tensor go = bf16_randn(y16.shape(), &gen);
    y16.backward(go);
    y64.backward(go.to(kFloat64));
    EXPECT_TRUE(close(y16.to(kFloat64), y64, kEps, kEps)) << c.name << ": output";
    EXPECT_TRUE(close(x16.grad().to(kFloat64), x64.grad(), kEps, kEps)) << c.name << ": input gradient";
    EXPECT_TRUE(close(w16.grad().to(kFloat64), w64.grad(), kEps, kEps)) << c.name << ": weight gradient";
    EXPECT_EQ(x16.grad().dtype(), kBFloat16) << c.name;
  }
}

TEST(ConvBf16Kernels, FusedEpiloguesRoundOnce) {
  Bf16KernelsOn on;
  Generator gen(6);
  Tensor x = bf16_randn({1, 8, 11, 12}, &gen), w = bf16_randn({12, 8, 3, 3}, &gen), b = bf16_randn({12}, &gen);
  Tensor s = add(rand({12}, kFloat32, &gen), 0.5).to(kBFloat16);
  const Tensor x64 = x.to(kFloat64), w64 = w.to(kFloat64), b64 = b.to(kFloat64), s64 = s.to(kFloat64);
  EXPECT_TRUE(close(conv2d_relu(x, w, b, 1, 1).to(kFloat64), relu(conv2d(x64, w64, b64, 1, 1)), kEps, kEps));
  for (bool r : {false, true})
    EXPECT_TRUE(close(conv2d_scale_shift(x, w, s, b, r, 1, 0).to(kFloat64), conv2d_scale_shift(x64, w64, s64, b64, r, 1, 0), kEps,
                      kEps))
        << "relu " << r;
}

TEST(ConvBf16Kernels, MatmulMatchesFloat64) {
  Bf16KernelsOn on;
  Generator gen(7);
  // Plain, a transposed view read without a copy, a batch of small products (one per thread).
  Tensor a = bf16_randn({70, 130}, &gen), b = bf16_randn({130, 50}, &gen), bt = bf16_randn({50, 130}, &gen);
  EXPECT_TRUE(close(matmul(a, b).to(kFloat64), matmul(a.to(kFloat64), b.to(kFloat64)), kEps, kEps));
  EXPECT_TRUE(close(matmul(a, bt.transpose(0, 1)).to(kFloat64), matmul(a.to(kFloat64), bt.to(kFloat64).transpose(0, 1)), kEps,
                    kEps));
  Tensor p = bf16_randn({8, 9, 33}, &gen), q = bf16_randn({8, 33, 10}, &gen);
  EXPECT_TRUE(close(matmul(p, q).to(kFloat64), matmul(p.to(kFloat64), q.to(kFloat64)), kEps, kEps));
}

// Winograd in bfloat16 (the default for 3x3 stride-1 convolutions) rounds its transformed tiles:
// its error against float64 on the same values is larger than the direct convolution's (the
// output's rounding alone) but bounded, forward and both gradients.
TEST(ConvBf16Kernels, WinogradErrorIsBounded) {
  Generator gen(8);
  Tensor x = bf16_randn({1, 64, 40, 40}, &gen), w = bf16_randn({64, 64, 3, 3}, &gen), go = bf16_randn({1, 64, 40, 40}, &gen);
  Tensor x64 = x.to(kFloat64).requires_grad_(), w64 = w.to(kFloat64).requires_grad_();
  const Tensor ref = conv2d(x64, w64, Tensor(), 1, 1);
  ref.backward(go.to(kFloat64));
  double err[2][3];  // [direct, Winograd][output, input gradient, weight gradient]
  for (int wino = 0; wino < 2; ++wino) {
    Bf16KernelsOn on(wino == 1);
    Tensor xi = x.clone().requires_grad_(), wi = w.clone().requires_grad_();
    const Tensor y = conv2d(xi, wi, Tensor(), 1, 1);
    y.backward(go);
    err[wino][0] = rel_l2(y.to(kFloat64), ref);
    err[wino][1] = rel_l2(xi.grad().to(kFloat64), x64.grad());
    err[wino][2] = rel_l2(wi.grad().to(kFloat64), w64.grad());
  }
  const char* what[] = {"output", "input gradient", "weight gradient"};
  for (int k = 0; k < 3; ++k) {
    GTEST_LOG_(INFO) << what[k] << ": relative L2 error vs float64: direct " << err[0][k] << ", Winograd " << err[1][k];
    EXPECT_LT(err[0][k], 1.0 / 256) << what[k];  // bfloat16's rounding of the result (~2^-10.8 rms)
    EXPECT_LT(err[1][k], 8 * err[0][k]) << what[k];
    EXPECT_LT(err[1][k], 1.0 / 64) << what[k];
  }
  EXPECT_GT(err[1][0], 1.5 * err[0][0]);  // the forward did run by Winograd
}

}  // namespace
}  // namespace tessera::test
