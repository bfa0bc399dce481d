// Initialisers.
#include "layers/init.h"

#include <cmath>

#include "autograd/ops.h"
#include "core/grad_mode.h"

namespace tessera::init {

std::pair<int64_t, int64_t> fans(const Tensor& w) {
  TS_CHECK(w.dim() >= 2, "init: fan in/out need a weight of at least 2 dimensions, got shape ", shape_str(w.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < w.dim(); ++d) receptive *= w.size(d);
  return {w.size(1) * receptive, w.size(0) * receptive};
}

void uniform_(Tensor& t, double low, double high, Generator* gen) {
  NoGradGuard g;
  t.copy_(uniform(t.shape(), low, high, options(t.dtype(), t.device()), gen));
}

void normal_(Tensor& t, double mean, double std, Generator* gen) {
  NoGradGuard g;
  Tensor n = randn(t.shape(), options(t.dtype(), t.device()), gen);
  t.copy_(add(mul(n, std), mean));
}

void constant_(Tensor& t, double value) {
  NoGradGuard g;
  t.fill_(value);
}

void kaiming_normal_(Tensor& t, const std::string& mode, Generator* gen) {
  TS_CHECK(mode == "fan_in" || mode == "fan_out", "kaiming_normal_: mode must be fan_in or fan_out, got ", mode);
  auto [fan_in, fan_out] = fans(t);
  const double fan = static_cast<double>(mode == "fan_in" ? fan_in : fan_out);
  normal_(t, 0.0, std::sqrt(2.0) / std::sqrt(fan), gen);
}

void kaiming_uniform_(Tensor& t, double a, Generator* gen) {
  const double fan_in = static_cast<double>(fans(t).first);
  const double bound = std::sqrt(6.0 / ((1.0 + a * a) * fan_in));
  uniform_(t, -bound, bound, gen);
}

void unet_normal_(Tensor& t, Generator* gen) { normal_(t, 0.0, std::sqrt(2.0 / static_cast<double>(fans(t).first)), gen); }

}  // namespace tessera::init
