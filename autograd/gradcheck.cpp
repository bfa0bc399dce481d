// gradcheck: finite differences against autograd.
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/ops.h"
#include "core/random.h"
#include "core/view.h"

namespace tessera {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                          double eps, double atol, double rtol) {
  GradcheckResult result;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad())
      TS_CHECK(inputs[i].dtype() == DType::Float64, "gradcheck: input ", i, " requires grad but is ",
               dtype_name(inputs[i].dtype()), "; use float64");

  // Analytical: the gradient of sum(f(x) * w) for fixed random weights w.
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      leaves.push_back(t);
      continue;
    }
    Tensor leaf = raw::clone(t);
    if (t.requires_grad()) leaf.requires_grad_(true);
    leaves.push_back(leaf);
  }
  Tensor y = f(leaves);
  TS_CHECK(y.defined() && is_floating(y.dtype()), "gradcheck: f must return a floating tensor");
  Generator gen(20261125);
  Tensor w = randn(y.shape(), options(DType::Float64, y.device()), &gen);
  auto weighted = [&](const Tensor& out) { return sum(mul(out.to(DType::Float64), w)).item<double>(); };
  if (!y.requires_grad()) {
    result.ok = false;
    result.message = "f's output does not require grad: nothing was recorded";
    return result;
  }
  sum(mul(y.to(DType::Float64), w)).backward();

  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined() || !inputs[i].requires_grad()) continue;
    Tensor analytical = leaves[i].grad();
    std::vector<double> a = analytical.defined() ? analytical.to_vector<double>()
                                                 : std::vector<double>(static_cast<size_t>(inputs[i].numel()), 0.0);
    const std::vector<double> x0 = inputs[i].to_vector<double>();
    for (int64_t j = 0; j < inputs[i].numel(); ++j) {
      NoGradGuard no_grad;
      auto eval_at = [&](double v) {
        std::vector<Tensor> args;
        for (size_t k = 0; k < inputs.size(); ++k) args.push_back(inputs[k].defined() ? raw::clone(inputs[k]) : Tensor());
        raw::fill_(raw::narrow(raw::reshape(args[i], {-1}), 0, j, 1), v);
        return weighted(f(args));
      };
      const double numerical = (eval_at(x0[j] + eps) - eval_at(x0[j] - eps)) / (2 * eps);
      const double err = std::abs(a[j] - numerical);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (!(err <= atol + rtol * std::abs(numerical))) {  // NaN fails too
        if (result.ok) {
          std::ostringstream ss;
          ss << "input " << i << " element " << j << ": analytical " << a[j] << " vs numerical " << numerical;
          result.message = ss.str();
        }
        result.ok = false;
      }
    }
  }
  return result;
}

}  // namespace tessera
