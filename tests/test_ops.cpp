// The checks every OpCase goes through (see op_table.h), and the helpers that make inputs.
#include <algorithm>
#include <functional>

#include "op_table.h"

namespace tessera::test {

std::vector<Tensor> make_inputs(const OpCase& c, DType float_dtype) {
  Generator gen(std::hash<std::string>{}(c.name));
  std::vector<Tensor> out;
  for (const In& in : c.inputs) {
    Tensor t;
    switch (in.kind) {
      case Kind::Normal: t = randn(in.shape, kFloat64, &gen); break;
      case Kind::Positive: t = uniform(in.shape, 0.5, 2.0, kFloat64, &gen); break;
      case Kind::Ties: t = randint(0, 3, in.shape, kInt64, &gen).to(kFloat64); break;
      case Kind::Int: t = randint(-5, 6, in.shape, kInt64, &gen); break;
      case Kind::Bool: t = randint(0, 2, in.shape, kInt64, &gen).to(kBool); break;
      case Kind::Index: t = randint(0, in.hi, in.shape, kInt64, &gen); break;
    }
    if (is_floating(t.dtype())) t = t.to(float_dtype);
    out.push_back(t);
  }
  return out;
}

std::string case_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string s = info.param.name;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

std::vector<OpCase> differentiable(const std::vector<OpCase>& cases) {
  std::vector<OpCase> out;
  for (const OpCase& c : cases)
    if (c.differentiable) out.push_back(c);
  return out;
}

std::vector<OpCase> with_floating_input(const std::vector<OpCase>& cases) {
  std::vector<OpCase> out;
  for (const OpCase& c : cases)
    for (const In& in : c.inputs)
      if (in.kind == Kind::Normal || in.kind == Kind::Positive || in.kind == Kind::Ties) {
        out.push_back(c);
        break;
      }
  return out;
}

void take_halves(std::vector<OpCase>& cases, const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    auto it = std::find_if(cases.begin(), cases.end(), [&](const OpCase& c) { return c.name == n; });
    if (it == cases.end()) ADD_FAILURE() << "take_halves: no case named " << n;
    else it->halves = true;
  }
}

void take_halves_by_prefix(std::vector<OpCase>& cases, const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes) {
    int64_t n = 0;
    for (OpCase& c : cases)
      if (c.name.rfind(p, 0) == 0) c.halves = true, ++n;
    if (n == 0) ADD_FAILURE() << "take_halves_by_prefix: no case starts with " << p;
  }
}

namespace {

std::vector<Host> hosts(const std::vector<Tensor>& ts) {
  std::vector<Host> h;
  for (const Tensor& t : ts) h.push_back(host(t));
  return h;
}

bool is_float_input(const In& in) { return in.kind == Kind::Normal || in.kind == Kind::Positive || in.kind == Kind::Ties; }

void check_against_reference(const OpCase& c, DType dtype, bool noncontig) {
  std::vector<Tensor> inputs = make_inputs(c, dtype);
  if (noncontig)
    for (Tensor& t : inputs) t = noncontiguous(t);
  Tensor out = c.fn(inputs);
  const Host expected = c.ref(hosts(inputs));
  const double tol = out.dtype() == kFloat64 ? 1e-10 : c.tol32;  // integer inputs can give float32
  EXPECT_TRUE(close(out, expected, tol, tol, true)) << c.name << " (" << dtype_name(dtype) << (noncontig ? ", non-contiguous" : "") << ")";
}

TEST_P(OpTest, Float32) { check_against_reference(GetParam(), kFloat32, false); }
TEST_P(OpTest, Float64) { check_against_reference(GetParam(), kFloat64, false); }
TEST_P(OpTest, NonContiguous) { check_against_reference(GetParam(), kFloat32, true); }

// The half rows: inputs drawn in float32 and rounded to `half`; the op on them against the float32
// op on the same values, rounded once. One rounding of the half type apart at most (a composite op
// may round in between: mean is a sum, then a scale), unless the case states more (bf16_tol:
// Winograd's bfloat16 tiles).
void check_half(const OpCase& c, DType half) {
  std::vector<Tensor> in_half, in_wide;
  for (const Tensor& t : make_inputs(c, kFloat32)) {
    const bool f = t.dtype() == kFloat32;
    in_half.push_back(f ? t.to(half) : t);
    in_wide.push_back(f ? in_half.back().to(kFloat32) : t);
  }
  if (!c.halves) {
    try {
      Tensor out = c.fn(in_half);
      ADD_FAILURE() << c.name << " accepted " << dtype_name(half) << " inputs (giving " << out.str()
                    << "): mark it in take_halves, so that its results are checked";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(dtype_name(half)), std::string::npos)
          << c.name << ": the refusal must name the dtype: " << e.message();
    }
    return;
  }
  Tensor out = c.fn(in_half);
  {  // the per-element bodies CUDA launches, on the CPU, give the same bits
    CpuPerElementScope scope(true);
    EXPECT_TRUE(equal(c.fn(in_half), out)) << c.name << " (" << dtype_name(half) << ", per-element bodies)";
  }
  Tensor expected = c.fn(in_wide);
  if (expected.dtype() == kFloat32) {
    EXPECT_EQ(out.dtype(), half) << c.name;
    expected = expected.to(half);
  } else {
    EXPECT_EQ(out.dtype(), expected.dtype()) << c.name;
  }
  const double eps = half == kBFloat16 ? c.bf16_tol : 1.0 / 1024;  // the half's unit roundoff x 2 unless stated
  const double atol = half == kBFloat16 && c.bf16_tol_of_largest ? eps * amax(abs(expected.to(kFloat64))).item<double>() : eps;
  EXPECT_TRUE(close(out.to(kFloat64), host(expected.to(kFloat64)), atol, eps, true))
      << c.name << " (" << dtype_name(half) << ")";
}

TEST_P(OpHalfTest, BFloat16) { check_half(GetParam(), kBFloat16); }
TEST_P(OpHalfTest, Float16) { check_half(GetParam(), kFloat16); }

TEST_P(OpGradTest, Gradcheck) {
  const OpCase& c = GetParam();
  std::vector<Tensor> inputs = make_inputs(c, kFloat64);
  for (size_t i = 0; i < inputs.size(); ++i)
    if (is_float_input(c.inputs[i]) && c.inputs[i].grad) inputs[i].requires_grad_();
  GradcheckResult r = gradcheck(c.fn, inputs);
  EXPECT_TRUE(r.ok) << c.name << ": " << r.message << " (max error " << r.max_abs_error << ")";
}

// The per-element bodies that CUDA launches, executed on the CPU (CpuPerElementScope), against the
// CPU's own path (range() fast paths, RoIAlign's plane-wise traversal): forward and gradients.
TEST_P(OpTest, PerElementBodyMatchesCpuPath) {
  const OpCase& c = GetParam();
  auto run = [&](bool per_element) {
    CpuPerElementScope scope(per_element);
    std::vector<Tensor> in = make_inputs(c, kFloat64);
    for (size_t i = 0; i < in.size(); ++i)
      if (c.differentiable && is_float_input(c.inputs[i]) && c.inputs[i].grad) in[i].requires_grad_();
    Tensor out = c.fn(in);
    std::vector<Tensor> results = {out.detach()};
    if (c.differentiable && out.requires_grad()) {
      Generator g(7);
      sum(mul(out, randn(out.shape(), out.dtype(), &g))).backward();
      for (const Tensor& t : in)
        if (t.requires_grad() && t.grad().defined()) results.push_back(t.grad());
    }
    return results;
  };
  const std::vector<Tensor> fast = run(false), body = run(true);
  ASSERT_EQ(fast.size(), body.size()) << c.name;
  for (size_t i = 0; i < fast.size(); ++i)
    EXPECT_TRUE(close(body[i], fast[i], 1e-12, 1e-12, true)) << c.name << (i == 0 ? " forward" : " gradient");
}

TEST_P(OpTest, CudaMatchesCpu) {
  TS_SKIP_WITHOUT_CUDA();
  const OpCase& c = GetParam();
  std::vector<Tensor> cpu_in = make_inputs(c, kFloat32);
  std::vector<Tensor> cuda_in;
  for (size_t i = 0; i < cpu_in.size(); ++i) {
    const bool grad = c.differentiable && is_float_input(c.inputs[i]) && c.inputs[i].grad;
    if (grad) cpu_in[i].requires_grad_();
    cuda_in.push_back(cpu_in[i].detach().to(cuda_device()));
    if (grad) cuda_in.back().requires_grad_();
  }
  Tensor out_cpu = c.fn(cpu_in), out_cuda = c.fn(cuda_in);
  ASSERT_TRUE(out_cuda.is_cuda());
  EXPECT_TRUE(close(out_cuda.cpu(), out_cpu, c.tol32, c.tol32, true)) << c.name << " forward";
  if (!c.differentiable || !out_cpu.requires_grad()) return;
  Tensor w = randn(out_cpu.shape(), out_cpu.dtype());
  sum(mul(out_cpu, w)).backward();
  sum(mul(out_cuda, w.to(cuda_device()))).backward();
  for (size_t i = 0; i < cpu_in.size(); ++i) {
    if (!cpu_in[i].requires_grad() || !cpu_in[i].grad().defined()) continue;
    ASSERT_TRUE(cuda_in[i].grad().defined()) << c.name << " input " << i;
    EXPECT_TRUE(close(cuda_in[i].grad().cpu(), cpu_in[i].grad(), c.tol32 * 10, c.tol32 * 10)) << c.name << " grad " << i;
  }
}

}  // namespace
}  // namespace tessera::test
