// bfloat16 and float16 tensors: the conversions against an independent reference (double
// arithmetic and a nearest-value search, never the bit code under test) and against PyTorch's
// Tensor.to on special values; dtype rules; accumulation of half reductions; files.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "test_helpers.h"

namespace tessera::test {
namespace {

namespace fs = std::filesystem;

// What a half's bits mean, from the format's definition: sign, exponent field, mantissa field.
double decode(uint16_t b, int exp_bits, int man_bits) {
  const int bias = (1 << (exp_bits - 1)) - 1, emax = (1 << exp_bits) - 1;
  const int e = (b >> man_bits) & emax, m = b & ((1 << man_bits) - 1);
  const double sign = (b >> 15) ? -1.0 : 1.0;
  if (e == emax) return m ? std::nan("") : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(static_cast<double>(m), 1 - bias - man_bits);
  return sign * std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -man_bits), e - bias);
}

struct Format {
  int exp_bits, man_bits;
  std::vector<double> finite_positive;  // every finite value >= 0, ascending, with its bits
  std::vector<uint16_t> bits;
  explicit Format(int eb, int mb) : exp_bits(eb), man_bits(mb) {
    for (uint32_t b = 0; b < 0x8000u; ++b) {
      const double v = decode(static_cast<uint16_t>(b), eb, mb);
      if (std::isfinite(v)) {
        finite_positive.push_back(v);
        bits.push_back(static_cast<uint16_t>(b));
      }
    }
  }
  // IEEE round to nearest, ties to even, by search: the bits of the nearest value; beyond the
  // largest finite value by half an ulp or more: infinity.
  uint16_t round(double x) const {
    const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double a = std::fabs(x);
    const uint16_t inf = static_cast<uint16_t>(((1u << exp_bits) - 1) << man_bits);
    const double top = finite_positive.back(), ulp = top - finite_positive[finite_positive.size() - 2];
    if (a >= top + ulp / 2) return sign | inf;
    const size_t hi = static_cast<size_t>(std::lower_bound(finite_positive.begin(), finite_positive.end(), a) -
                                          finite_positive.begin());
    if (hi == finite_positive.size()) return sign | bits.back();  // within half an ulp above the top
    if (finite_positive[hi] == a) return sign | bits[hi];
    const size_t lo = hi - 1;
    const double dl = a - finite_positive[lo], dh = finite_positive[hi] - a;
    size_t pick = dl < dh ? lo : dh < dl ? hi : ((bits[lo] & 1) ? hi : lo);
    return sign | bits[pick];
  }
};

const Format& bf16_format() {
  static const Format f(8, 7);
  return f;
}
const Format& f16_format() {
  static const Format f(5, 10);
  return f;
}

float from_bits32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(HalfCasts, EveryHalfWidensExactly) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const auto h = static_cast<uint16_t>(b);
    const double want_bf = decode(h, 8, 7), want_f = decode(h, 5, 10);
    const float got_bf = bfloat16::from_bits(h), got_f = float16::from_bits(h);
    if (std::isnan(want_bf)) EXPECT_TRUE(std::isnan(got_bf)) << std::hex << b;
    else ASSERT_EQ(static_cast<double>(got_bf), want_bf) << std::hex << b;
    if (std::isnan(want_f)) EXPECT_TRUE(std::isnan(got_f)) << std::hex << b;
    else ASSERT_EQ(static_cast<double>(got_f), want_f) << std::hex << b;
  }
}

// float32 -> half against the search: every float32 next to a half's value or a midpoint between
// two halves (where a rounding rule shows), and a million random bit patterns.
TEST(HalfCasts, FloatsRoundToNearestEvenAsTheSearchSays) {
  std::vector<float> xs;
  for (const Format* f : {&bf16_format(), &f16_format()}) {
    const auto& v = f->finite_positive;
    for (size_t i = 0; i + 1 < v.size(); i += (v.size() > 40000 ? 3 : 1)) {
      const float mid = static_cast<float>((v[i] + v[i + 1]) / 2);  // exact: a half's midpoints are floats
      for (float x : {static_cast<float>(v[i]), mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
        xs.push_back(x);
        xs.push_back(-x);
      }
    }
  }
  std::mt19937 rng(3);
  for (int i = 0; i < (1 << 20); ++i) xs.push_back(from_bits32(static_cast<uint32_t>(rng())));
  int64_t checked = 0;
  for (float x : xs) {
    const uint16_t bf = bfloat16(x).bits, hf = float16(x).bits;
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16::from_bits(bf))));
      EXPECT_TRUE(std::isnan(static_cast<float>(float16::from_bits(hf))));
      EXPECT_EQ(bf >> 15, std::signbit(x) ? 1 : 0);
      continue;
    }
    ASSERT_EQ(bf, bf16_format().round(x)) << std::hexfloat << x;
    ASSERT_EQ(hf, f16_format().round(x)) << std::hexfloat << x;
    ++checked;
  }
  EXPECT_GT(checked, 1000000);
}

std::vector<int32_t> int_values(const Tensor& t) { return t.to_vector<int32_t>(); }

// Tensor.to against PyTorch 1.13 (tests/data/torch/half_casts, scripts/make_fixtures.py
// --only-half-casts): bit for bit, except that a NaN need only stay a NaN (PyTorch's own bits for
// NaN differ between its vectorised and scalar loops: 0xffff or 0x7fc0 for bfloat16).
TEST(HalfCasts, TensorToMatchesPyTorchBitForBit) {
  const std::string dir = data_path("torch/half_casts/specials/");
  auto check = [](const Tensor& x, DType half, const std::vector<int32_t>& want) -> int64_t {
    const Tensor h = x.to(half);
    EXPECT_EQ(h.dtype(), half);
    const bool bf = half == kBFloat16;
    std::vector<uint16_t> got(static_cast<size_t>(h.numel()));
    std::memcpy(got.data(), h.contiguous().data_ptr(), got.size() * 2);
    EXPECT_EQ(got.size(), want.size());
    if (got.size() != want.size()) return 0;
    int64_t nans = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double g = decode(got[i], bf ? 8 : 5, bf ? 7 : 10);
      const double w = decode(static_cast<uint16_t>(want[i]), bf ? 8 : 5, bf ? 7 : 10);
      if (std::isnan(w)) {
        EXPECT_TRUE(std::isnan(g)) << i;
        ++nans;
      } else {
        EXPECT_EQ(got[i], want[i]) << dtype_name(half) << " of element " << i << ": " << std::hex << got[i] << " vs "
                                   << want[i];
      }
    }
    return nans;
  };
  const Tensor x = load_npy(dir + "x.npy"), x64 = load_npy(dir + "x64.npy");
  ASSERT_EQ(x.dtype(), kFloat32);
  ASSERT_EQ(x64.dtype(), kFloat64);
  EXPECT_GT(check(x, kBFloat16, int_values(load_npy(dir + "bf16_bits.npy"))), 4);
  EXPECT_GT(check(x, kFloat16, int_values(load_npy(dir + "f16_bits.npy"))), 4);
  check(x64, kBFloat16, int_values(load_npy(dir + "bf16_bits_of_x64.npy")));  // through float32, as PyTorch
  check(x64, kFloat16, int_values(load_npy(dir + "f16_bits_of_x64.npy")));
  // Back to float32 and float64: exact.
  const Tensor bf = x.to(kBFloat16);
  const std::vector<float> wide = bf.to_vector<float>();
  const std::vector<double> wider = bf.to(kFloat64).to_vector<double>();
  for (size_t i = 0; i < wide.size(); ++i)
    if (!std::isnan(wide[i])) {
      EXPECT_EQ(static_cast<double>(wide[i]), wider[i]);
    }
}

TEST(HalfCasts, IntegersAndBoolsConvertThroughFloat) {
  const Tensor i = from_vector<int64_t>({0, -3, 257, 65519, 65520, 1 << 30});
  EXPECT_EQ(i.to(kBFloat16).to_vector<double>(), (std::vector<double>{0, -3, 256, 65536, 65536, 1 << 30}));
  EXPECT_EQ(i.to(kFloat16).to_vector<double>(), (std::vector<double>{0, -3, 257, 65504, INFINITY, INFINITY}));
  EXPECT_EQ(from_vector<double>({-2.75, 0.0, 3.99}).to(kBFloat16).to(kInt64).to_vector<int64_t>(),
            (std::vector<int64_t>{-2, 0, 3}));
  EXPECT_EQ(from_vector<double>({0.0, -0.0, 1e-30, std::nan("")}).to(kFloat16).to(kBool).to_vector<bool>(),
            (std::vector<bool>{false, false, false, true}));  // 1e-30 is 0 in float16
}

TEST(HalfDtype, NamesSizesAndPromotion) {
  EXPECT_EQ(element_size(kBFloat16), 2u);
  EXPECT_EQ(element_size(kFloat16), 2u);
  EXPECT_STREQ(dtype_name(kBFloat16), "bfloat16");
  EXPECT_STREQ(dtype_name(kFloat16), "float16");
  EXPECT_TRUE(is_floating(kBFloat16) && is_floating(kFloat16));
  // PyTorch's table (torch.promote_types).
  EXPECT_EQ(promote_types(kBFloat16, kFloat16), kFloat32);
  EXPECT_EQ(promote_types(kFloat16, kBFloat16), kFloat32);
  EXPECT_EQ(promote_types(kBFloat16, kFloat32), kFloat32);
  EXPECT_EQ(promote_types(kFloat16, kFloat64), kFloat64);
  EXPECT_EQ(promote_types(kInt64, kBFloat16), kBFloat16);
  EXPECT_EQ(promote_types(kFloat16, kUInt8), kFloat16);
  EXPECT_EQ(promote_types(kBool, kFloat16), kFloat16);
  const Tensor a = full({3}, 1.5, kBFloat16), b = full({3}, 2.0, kFloat16);
  EXPECT_EQ((a + b).dtype(), kFloat32);
  EXPECT_EQ((a + 1).dtype(), kBFloat16);  // a number does not promote a tensor of its category
  EXPECT_EQ((a * full({3}, 2, kInt64)).dtype(), kBFloat16);
  EXPECT_EQ((a + full({3}, 2, kFloat32)).dtype(), kFloat32);
  EXPECT_EQ((a + b).to_vector<float>(), (std::vector<float>{3.5f, 3.5f, 3.5f}));
}

// A number is used at float precision, as PyTorch does (not rounded to the half first):
// 1 + 0.00390625 (2^-8) in bfloat16 is the tie between 1 and 1 + 2^-7: even, so 1; 2^-8 + 2^-12
// as a number would round to 2^-8 in bfloat16 first and give 1 too, but at float precision it is
// above the tie and gives 1 + 2^-7.
TEST(HalfDtype, ScalarsTakePartAtFloatPrecision) {
  const Tensor one = full({2}, 1.0, kBFloat16);
  EXPECT_EQ((one + 0.00390625).to_vector<float>()[0], 1.0f);
  EXPECT_EQ((one + (0.00390625 + 0.000244140625)).to_vector<float>()[0], 1.0f + 0.0078125f);
}

// Sums of halves accumulate wide: 4096 ones in bfloat16 are 4096 (exact in bfloat16); a bfloat16
// accumulator stops at 256 (256 + 1 rounds back to 256).
TEST(HalfReduce, SumsAccumulateWiderThanTheHalf) {
  for (DType d : {kBFloat16, kFloat16}) {
    for (bool per_element : {false, true}) {
      CpuPerElementScope scope(per_element);
      const Tensor x = ones({4096}, d);
      EXPECT_EQ(sum(x).item<float>(), 4096.0f) << dtype_name(d);
      EXPECT_EQ(sum(ones({4096, 3}, d), {0}).to_vector<float>(), (std::vector<float>{4096, 4096, 4096}));
      EXPECT_EQ(mean(x).item<float>(), 1.0f);
      EXPECT_EQ(sum(x).dtype(), d);
    }
  }
  const Tensor f16 = full({70000}, 1.0, kFloat16);  // the sum overflows float16: inf, as PyTorch
  EXPECT_TRUE(std::isinf(sum(f16).item<float>()));
  EXPECT_EQ(mean(f16).item<float>(), 1.0f);  // but the mean is computed before the rounding
}

TEST(HalfReduce, MaxArgmaxOfHalvesAreExact) {
  Generator g(4);
  const Tensor x = randn({1000, 37}, kFloat32, &g).to(kBFloat16);
  const Tensor w = x.to(kFloat32);
  EXPECT_EQ(amax(x, {1}).to(kFloat32).to_vector<float>(), amax(w, {1}).to_vector<float>());
  EXPECT_EQ(argmax(x, 1).to_vector<int64_t>(), argmax(w, 1).to_vector<int64_t>());
  EXPECT_EQ(argmax(x, 0).to_vector<int64_t>(), argmax(w, 0).to_vector<int64_t>());
  EXPECT_EQ(amax(x).dtype(), kBFloat16);
}

TEST(HalfTensor, PrintsItsValues) {
  std::ostringstream s;
  s << from_vector<float>({1.5f, -0.25f}).to(kFloat16);
  EXPECT_EQ(s.str(), "Tensor([2] float16 on cpu, values [1.5, -0.25])");
}

TEST(HalfTensor, RandomDrawsAreTheFloat32DrawsRounded) {
  Generator a(9), b(9);
  const Tensor h = randn({257}, kBFloat16, &a);
  const Tensor f = randn({257}, kFloat32, &b);
  EXPECT_EQ(h.dtype(), kBFloat16);
  EXPECT_TRUE(equal(h, f.to(kBFloat16)));
}

TEST(HalfFiles, NpyFloat16BothWaysAndBFloat16Refused) {
  const fs::path dir = fs::temp_directory_path() / "tessera_half_files";
  fs::create_directories(dir);
  Generator g(2);
  const Tensor x = randn({3, 5}, kFloat32, &g).to(kFloat16);
  save_npy((dir / "h.npy").string(), x);
  const Tensor back = load_npy((dir / "h.npy").string());
  EXPECT_EQ(back.dtype(), kFloat16);
  EXPECT_TRUE(equal(back, x));
  EXPECT_THROW_MSG(save_npy((dir / "b.npy").string(), x.to(kBFloat16)), "NumPy has no bfloat16");
}

TEST(HalfFiles, SafetensorsKeepTheHalvesWhenAskedAndWidenOtherwise) {
  const fs::path p = fs::temp_directory_path() / "tessera_half.safetensors";
  Generator g(5);
  const Tensor b = randn({4, 3}, kFloat32, &g).to(kBFloat16), h = randn({7}, kFloat32, &g).to(kFloat16);
  save_safetensors(p.string(), {{"b", b}, {"h", h}});
  const SafetensorsFile kept = load_safetensors(p.string(), HalfLoad::Keep);
  EXPECT_EQ(kept.tensors.at("b").dtype(), kBFloat16);
  EXPECT_EQ(kept.tensors.at("h").dtype(), kFloat16);
  EXPECT_TRUE(equal(kept.tensors.at("b"), b));
  EXPECT_TRUE(equal(kept.tensors.at("h"), h));
  const SafetensorsFile wide = load_safetensors(p.string());
  EXPECT_EQ(wide.tensors.at("b").dtype(), kFloat32);
  EXPECT_TRUE(equal(wide.tensors.at("b"), b.to(kFloat32)));
  EXPECT_TRUE(equal(wide.tensors.at("h"), h.to(kFloat32)));
}

}  // namespace
}  // namespace tessera::test

namespace tessera::test {
namespace {

// Gradients flow through half ops: a small network in bfloat16 (conv, batch norm, ReLU, pooling,
// upsampling, cross-entropy) gives input and weight gradients of the half dtype, within bfloat16's
// rounding of the float32 network's on the same rounded values.
TEST(HalfAutograd, GradientsOfAHalfNetworkFollowTheFloat32Ones) {
  Generator g(12);
  const Tensor x0 = randn({2, 3, 12, 12}, kFloat32, &g).to(kBFloat16).to(kFloat32);
  const Tensor w0 = (randn({4, 3, 3, 3}, kFloat32, &g) * 0.3).to(kBFloat16).to(kFloat32);
  const Tensor target = randint(0, 4, {2, 10, 10}, kInt64, &g);
  auto run = [&](DType d) {
    Tensor x = x0.to(d).detach().requires_grad_(), w = w0.to(d).detach().requires_grad_();
    Tensor rm = zeros({4}, d), rv = ones({4}, d);
    Tensor h = relu(batch_norm(conv2d(x, w), rm, rv, Tensor(), Tensor(), true, 0.1, 1e-5));
    h = interpolate(max_pool2d(h, {2, 2}), Int2{10, 10}, "bilinear");
    Tensor loss = cross_entropy(h, target);
    loss.backward();
    EXPECT_EQ(loss.dtype(), d);
    EXPECT_EQ(x.grad().dtype(), d);
    EXPECT_EQ(w.grad().dtype(), d);
    EXPECT_EQ(rm.dtype(), d);  // half running statistics stay half, and move
    EXPECT_GT(sum(abs(rm)).item<float>(), 0.0f);
    return std::vector<Tensor>{loss.to(kFloat32), x.grad().to(kFloat32), w.grad().to(kFloat32), rm.to(kFloat32)};
  };
  const std::vector<Tensor> half = run(kBFloat16), full = run(kFloat32);
  EXPECT_TRUE(close(half[0], full[0], 1e-2, 1e-2));
  // Gradients pass through several bfloat16 roundings (each backward op rounds its result).
  for (size_t i = 1; i < half.size(); ++i) {
    const double scale = amax(abs(full[i])).item<float>();
    EXPECT_TRUE(close(half[i], full[i], 0.03 * scale, 0.03)) << i;
  }
}

}  // namespace
}  // namespace tessera::test

namespace tessera::test {
namespace {

// On a GPU the half convolutions and products run in cuDNN's and cuBLAS's half kernels (float32
// compute on the tensor cores); they must agree with the CPU's (float32 compute, one rounding)
// within a rounding or two of the half, forward and gradients.
TEST(HalfCuda, ConvolutionsAndProductsMatchTheCpu) {
  TS_SKIP_WITHOUT_CUDA();
  for (DType d : {kBFloat16, kFloat16}) {
    const double tol = d == kBFloat16 ? 2.0 / 128 : 2.0 / 1024;
    Generator g(21);
    const Tensor x = randn({2, 8, 12, 12}, kFloat32, &g).to(d), w = (randn({6, 8, 3, 3}, kFloat32, &g) * 0.2).to(d);
    const Tensor b = randn({6}, kFloat32, &g).to(d), wt = (randn({8, 4, 2, 2}, kFloat32, &g) * 0.3).to(d);
    const Tensor m = randn({3, 40, 24}, kFloat32, &g).to(d), n = randn({3, 24, 16}, kFloat32, &g).to(d);
    auto run = [&](const Device& dev) {
      Tensor xd = x.to(dev).detach().requires_grad_(), wd = w.to(dev).detach().requires_grad_();
      Tensor y = conv2d_relu(xd, wd, b.to(dev), 1, 1);
      Tensor u = conv_transpose2d(xd, wt.to(dev), Tensor(), 2);
      Tensor p = bmm(m.to(dev), n.to(dev));
      sum(mul(y, y)).backward();
      return std::vector<Tensor>{y.cpu(), u.cpu(), p.cpu(), xd.grad().cpu(), wd.grad().cpu()};
    };
    const std::vector<Tensor> cpu = run(kCPU), gpu = run(cuda_device());
    for (size_t i = 0; i < cpu.size(); ++i) {
      EXPECT_EQ(gpu[i].dtype(), d) << i;
      const double scale = amax(abs(cpu[i].to(kFloat32))).item<float>();
      EXPECT_TRUE(close(gpu[i].to(kFloat32), cpu[i].to(kFloat32), tol * scale, tol)) << dtype_name(d) << " output " << i;
    }
  }
}

// set_cuda_allow_tf32: float32 products on TF32 tensor cores differ from full float32 by TF32's
// rounding (10-bit mantissas), and not at all when off.
TEST(HalfCuda, Tf32IsASwitchAndOffByDefault) {
  TS_SKIP_WITHOUT_CUDA();
  EXPECT_FALSE(cuda_allow_tf32());
  Generator g(2);
  const Tensor a = randn({256, 512}, kFloat32, &g), b = randn({512, 256}, kFloat32, &g);
  const Tensor exact = matmul(a.to(kFloat64), b.to(kFloat64)).to(kFloat32);
  const Tensor full = matmul(a.to(cuda_device()), b.to(cuda_device())).cpu();
  set_cuda_allow_tf32(true);
  const Tensor tf32 = matmul(a.to(cuda_device()), b.to(cuda_device())).cpu();
  set_cuda_allow_tf32(false);
  const double err_full = amax(abs(sub(full, exact))).item<float>(), err_tf32 = amax(abs(sub(tf32, exact))).item<float>();
  EXPECT_LT(err_full, 1e-3);
  EXPECT_GT(err_tf32, 4 * err_full);  // TF32 keeps 10 mantissa bits of each operand
  EXPECT_LT(err_tf32, 0.5);
}

}  // namespace
}  // namespace tessera::test

namespace tessera::test {
namespace {

// A whole model in bfloat16 (Module::to), as people ship inference models: it runs, its
// checkpoint stores BF16, and a float32 model of the same architecture loads it (widened).
TEST(HalfModule, AModelInBFloat16RunsSavesAndLoadsIntoFloat32) {
  manual_seed(8);
  UNet net(UNetOptions{1, 2, 4, 2});
  net.eval();
  const Tensor x = randn({1, 1, 44, 44});
  Tensor want;
  {
    NoGradGuard g;
    want = net.forward(x);
  }
  net.to(kBFloat16);
  for (auto& [name, p] : net.named_parameters()) EXPECT_EQ(p.dtype(), kBFloat16) << name;
  const std::string path = (std::filesystem::temp_directory_path() / "tessera_unet_bf16.safetensors").string();
  save_module(net, path);
  EXPECT_EQ(load_safetensors(path, HalfLoad::Keep).tensors.begin()->second.dtype(), kBFloat16);
  Tensor got;
  {
    NoGradGuard g;
    got = net.forward(x.to(kBFloat16));
  }
  EXPECT_EQ(got.dtype(), kBFloat16);
  const double scale = amax(abs(want)).item<float>();
  EXPECT_TRUE(close(got.to(kFloat32), want, 0.05 * scale, 0.05));  // bfloat16 weights and activations
  UNet wide(UNetOptions{1, 2, 4, 2});
  ASSERT_TRUE(load_module(wide, path).ok());
  for (auto& [name, p] : wide.named_parameters()) EXPECT_EQ(p.dtype(), kFloat32) << name;
  wide.eval();
  NoGradGuard g;
  EXPECT_TRUE(close(wide.forward(x), want, 0.05 * scale, 0.05));  // the weights rounded once
}

}  // namespace
}  // namespace tessera::test
