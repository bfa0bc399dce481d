// The table-driven op suite (after ggml's test-backend-ops).
//
// How to add an op: append an OpCase to one of the tables (test_ops_*.cpp): a name, its inputs
// (shape and kind), the op under test (fn), a naive float64 reference (ref, in tests/reference.h
// style: plain loops over Host), and whether it is differentiable. Every case is then checked:
//   Float32 / Float64  — the CPU result against the reference,
//   NonContiguous      — the same with every input given in a transposed or strided layout,
//   Gradcheck          — autograd against central differences in float64 (differentiable cases),
//   CudaMatchesCpu     — the CUDA result and gradients against the CPU's (skips without a GPU),
//   BFloat16 / Float16 — (cases with a floating input) with `halves`: the op on half inputs equals
//                        the float32 op on the same rounded values, rounded, within one rounding
//                        of the half type; without: the op refuses half inputs with an Error that
//                        names the dtype (never arithmetic in 16 bits by accident).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "reference.h"

namespace tessera::test {

enum class Kind {
  Normal,    // N(0, 1) floats
  Positive,  // U(0.5, 2) floats (log, sqrt, divisors)
  Ties,      // floats from {0, 1, 2}: many exact ties (sorting stability, comparisons)
  Int,       // int64 in [-5, 5]
  Bool,      // bool
  Index,     // int64 in [0, hi)
};

struct In {
  Shape shape;
  Kind kind = Kind::Normal;
  int64_t hi = 0;     // Index: exclusive upper bound
  bool grad = true;   // floats: take part in gradcheck
};

struct OpCase {
  std::string name;
  std::vector<In> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  std::function<Host(const std::vector<Host>&)> ref;
  bool differentiable = true;
  double tol32 = 2e-5;  // atol and rtol for float32 results (float64: 1e-10)
  bool halves = false;  // takes bfloat16 and float16 inputs (else it must refuse them)
  // bfloat16 results against the float32 op on the same values, rounded: rtol, and atol as a
  // fraction of the largest expected magnitude when bf16_tol_of_largest (else absolute).
  double bf16_tol = 1.0 / 128;
  bool bf16_tol_of_largest = false;
};

inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

// Inputs of a case: floats in `float_dtype`, deterministic per case name.
std::vector<Tensor> make_inputs(const OpCase& c, DType float_dtype);

class OpTest : public ::testing::TestWithParam<OpCase> {};
// Gradcheck runs on the differentiable cases only (instantiated apart, so that no case is skipped).
class OpGradTest : public OpTest {};
// The half rows run on the cases with at least one floating input.
class OpHalfTest : public OpTest {};

std::string case_name(const ::testing::TestParamInfo<OpCase>& info);
std::vector<OpCase> differentiable(const std::vector<OpCase>& cases);
std::vector<OpCase> with_floating_input(const std::vector<OpCase>& cases);
// Marks the named cases as taking the halves (an unknown name is a test failure).
void take_halves(std::vector<OpCase>& cases, const std::vector<std::string>& names);
// Marks the cases whose name starts with one of `prefixes` (a prefix matching none is a failure).
void take_halves_by_prefix(std::vector<OpCase>& cases, const std::vector<std::string>& prefixes);

// Instantiates every check of the table for `prefix`'s cases.
#define TS_INSTANTIATE_OP_TABLE(prefix, cases_expr)                                                  \
  INSTANTIATE_TEST_SUITE_P(prefix, OpTest, ::testing::ValuesIn(cases_expr), case_name);            \
  INSTANTIATE_TEST_SUITE_P(prefix, OpGradTest, ::testing::ValuesIn(differentiable(cases_expr)), case_name); \
  INSTANTIATE_TEST_SUITE_P(prefix, OpHalfTest, ::testing::ValuesIn(with_floating_input(cases_expr)), case_name)

}  // namespace tessera::test
