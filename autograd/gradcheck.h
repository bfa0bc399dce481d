// gradcheck: compares autograd's gradients with central finite differences in float64, as
// torch.autograd.gradcheck (with a random projection of the output, as its fast mode).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera {

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;   // largest |analytical - numerical| seen
  std::string message;        // the first mismatch, in words
};

// f maps the inputs to one tensor. Every input that requires grad must be float64; each of its
// elements is perturbed by ±eps. An element passes when |analytical - numerical| <= atol +
// rtol * |numerical|. The output is projected on fixed random weights, so one backward suffices.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                          double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3);

}  // namespace tessera
