// Losses and dropout, composed of differentiable ops (their gradients follow by composition).
#include "autograd/autocast.h"
#include "autograd/op_helpers.h"
#include "core/random.h"
#include "kernels/reduce.h"

namespace tessera {

namespace {

Tensor reduce_loss(const char* op, const Tensor& loss, const std::string& reduction) {
  if (reduction == "none") return loss;
  if (reduction == "sum") return sum(loss);
  if (reduction == "mean") return mean(loss);
  TS_ERROR(op, ": reduction must be \"mean\", \"sum\" or \"none\", got \"", reduction, "\"");
}

void check_reduction(const char* op, const std::string& reduction) {
  TS_CHECK(reduction == "mean" || reduction == "sum" || reduction == "none", op,
           ": reduction must be \"mean\", \"sum\" or \"none\", got \"", reduction, "\"");
}

// Checks target against input [N, C, d...] and returns (safe target, valid mask as the input's dtype).
std::pair<Tensor, Tensor> checked_target(const char* op, const Tensor& input, const Tensor& target, int64_t ignore_index) {
  TS_CHECK(input.defined() && input.dim() >= 2, op, ": input must be [N, C] or [N, C, d1, ...], got ",
           input.defined() ? shape_str(input.shape()) : "undefined");
  detail::check_floating(op, input);
  TS_CHECK(target.defined() && target.dtype() == DType::Int64, op, ": target must be an int64 tensor of class indices, got ",
           target.defined() ? dtype_name(target.dtype()) : "undefined");
  TS_CHECK(target.device() == input.device(), op, ": target is on ", target.device(), " but input on ", input.device());
  Shape expected = input.shape();
  expected.erase(expected.begin() + 1);
  TS_CHECK(target.shape() == expected, op, ": target must have shape ", shape_str(expected), " for input ",
           shape_str(input.shape()), ", got ", shape_str(target.shape()));
  NoGradGuard no_grad;
  Tensor ignored = eq(target, static_cast<double>(ignore_index));
  Tensor safe = where(ignored, 0.0, target);
  if (safe.numel() > 0) {
    const std::vector<int64_t> lohi = stack({amin(safe), amax(safe)}).to_vector<int64_t>();  // one transfer
    TS_CHECK(lohi[0] >= 0 && lohi[1] < input.size(1), op, ": target values must be in [0, ", input.size(1),
             ") or equal ignore_index (", ignore_index, "); found values in [", lohi[0], ", ", lohi[1], "]");
  }
  return {safe, logical_not(ignored).to(input.dtype())};
}

// -log p[target] per element, [N, d...] (0 where ignored is handled by the caller's weights).
Tensor picked_nll(const Tensor& log_probs, const Tensor& safe_target) {
  return neg(gather(log_probs, 1, safe_target.unsqueeze(1)).squeeze(1));
}

}  // namespace

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                const std::string& reduction) {
  check_reduction("nll_loss", reduction);
  TS_AUTOCAST_F32(log_probs, nll_loss(TS_F32(log_probs), target, TS_F32(weight), ignore_index, reduction));
  auto [safe, valid] = checked_target("nll_loss", log_probs, target, ignore_index);
  Tensor w = valid;
  if (weight.defined()) {
    TS_CHECK(weight.dim() == 1 && weight.size(0) == log_probs.size(1) && weight.dtype() == log_probs.dtype() &&
                 weight.device() == log_probs.device(),
             "nll_loss: weight must be [", log_probs.size(1), "] ", dtype_name(log_probs.dtype()), " on ",
             log_probs.device(), ", got ", weight.str());
    w = mul(index_select(weight, 0, safe.flatten()).reshape(safe.shape()), valid);
  }
  Tensor loss = mul(picked_nll(log_probs, safe), w);
  if (reduction == "none") return loss;
  if (reduction == "sum") return sum(loss);
  return div(sum(loss), sum(w));  // PyTorch: the weighted mean over non-ignored elements
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                     const std::string& reduction) {
  TS_CHECK(logits.defined() && logits.dim() >= 2, "cross_entropy: logits must be [N, C] or [N, C, d1, ...], got ",
           logits.defined() ? shape_str(logits.shape()) : "undefined");
  TS_AUTOCAST_F32(logits, cross_entropy(TS_F32(logits), target, TS_F32(weight), ignore_index, reduction));
  if (is_half(logits.dtype()))  // in float32 (log_softmax and the mean), rounded once
    return cross_entropy(detail::widen_half(logits), target, detail::widen_half(weight), ignore_index, reduction)
        .to(logits.dtype());
  return nll_loss(log_softmax(logits, 1), target, weight, ignore_index, reduction);
}

Tensor pixel_weighted_cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& pixel_weight,
                                    int64_t ignore_index, const std::string& reduction) {
  check_reduction("pixel_weighted_cross_entropy", reduction);
  TS_AUTOCAST_F32(logits, pixel_weighted_cross_entropy(TS_F32(logits), target, TS_F32(pixel_weight), ignore_index, reduction));
  if (logits.defined() && is_half(logits.dtype()))
    return pixel_weighted_cross_entropy(detail::widen_half(logits), target, detail::widen_half(pixel_weight), ignore_index,
                                        reduction)
        .to(logits.dtype());
  auto [safe, valid] = checked_target("pixel_weighted_cross_entropy", logits, target, ignore_index);
  TS_CHECK(pixel_weight.defined() && pixel_weight.shape() == target.shape() && pixel_weight.dtype() == logits.dtype() &&
               pixel_weight.device() == logits.device(),
           "pixel_weighted_cross_entropy: pixel_weight must be ", shape_str(target.shape()), " ", dtype_name(logits.dtype()),
           " on ", logits.device(), ", got ", pixel_weight.defined() ? pixel_weight.str() : "undefined");
  Tensor loss = mul(mul(picked_nll(log_softmax(logits, 1), safe), pixel_weight), valid);
  if (reduction == "none") return loss;
  if (reduction == "sum") return sum(loss);
  return div(sum(loss), sum(valid));
}

Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& y, const Tensor& weight, const Tensor& pos_weight,
                                        const std::string& reduction) {
  check_reduction("binary_cross_entropy_with_logits", reduction);
  TS_CHECK(x.defined() && y.defined() && x.shape() == y.shape(), "binary_cross_entropy_with_logits: target shape ",
           y.defined() ? shape_str(y.shape()) : "undefined", " must equal input shape ",
           x.defined() ? shape_str(x.shape()) : "undefined");
  detail::check_floating("binary_cross_entropy_with_logits", x);
  detail::check_same_device("binary_cross_entropy_with_logits", {&x, &y});
  TS_AUTOCAST_F32(x, binary_cross_entropy_with_logits(TS_F32(x), TS_F32(y), TS_F32(weight), TS_F32(pos_weight), reduction));
  if (is_half(x.dtype()))
    return binary_cross_entropy_with_logits(detail::widen_half(x), detail::widen_half(y), detail::widen_half(weight),
                                            detail::widen_half(pos_weight), reduction)
        .to(x.dtype());
  // PyTorch's stable form: (1 - y) x + (1 + (pw - 1) y) (log1p(exp(-|x|)) + max(-x, 0)).
  Tensor softplus_neg = add(log1p(exp(neg(abs(x)))), clamp_min(neg(x), 0.0));
  Tensor log_weight = pos_weight.defined() ? add(mul(sub(pos_weight, 1.0), y), 1.0) : Tensor();
  Tensor loss = add(mul(rsub(y, 1.0), x), log_weight.defined() ? mul(log_weight, softplus_neg) : softplus_neg);
  if (weight.defined()) loss = mul(loss, weight);
  return reduce_loss("binary_cross_entropy_with_logits", loss, reduction);
}

Tensor smooth_l1_loss(const Tensor& x, const Tensor& y, double beta, const std::string& reduction) {
  check_reduction("smooth_l1_loss", reduction);
  TS_CHECK(beta >= 0, "smooth_l1_loss: beta must be non-negative, got ", beta);
  TS_CHECK(x.defined() && y.defined() && x.shape() == y.shape(), "smooth_l1_loss: input and target shapes differ");
  TS_AUTOCAST_F32(x, smooth_l1_loss(TS_F32(x), TS_F32(y), beta, reduction));
  if (is_half(x.dtype())) return smooth_l1_loss(detail::widen_half(x), detail::widen_half(y), beta, reduction).to(x.dtype());
  Tensor d = sub(x, y), ad = abs(d);
  if (beta == 0.0) return reduce_loss("smooth_l1_loss", ad, reduction);
  Tensor loss = where(lt(ad, beta), div(mul(mul(d, d), 0.5), beta), sub(ad, 0.5 * beta));
  return reduce_loss("smooth_l1_loss", loss, reduction);
}

Tensor l1_loss(const Tensor& x, const Tensor& y, const std::string& reduction) {
  check_reduction("l1_loss", reduction);
  TS_CHECK(x.defined() && y.defined() && x.shape() == y.shape(), "l1_loss: input and target shapes differ");
  TS_AUTOCAST_F32(x, l1_loss(TS_F32(x), TS_F32(y), reduction));
  if (is_half(x.dtype())) return l1_loss(detail::widen_half(x), detail::widen_half(y), reduction).to(x.dtype());
  return reduce_loss("l1_loss", abs(sub(x, y)), reduction);
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  TS_CHECK(p >= 0.0 && p <= 1.0, "dropout: p must be in [0, 1], got ", p);
  TS_CHECK(x.defined(), "dropout: the input is undefined");
  if (!training || p == 0.0) return x;
  detail::check_floating("dropout", x);
  if (p == 1.0) return mul(x, 0.0);
  Tensor keep;
  {
    NoGradGuard no_grad;
    keep = mul(ge(rand(x.shape(), options(x.dtype(), x.device()), gen), p).to(x.dtype()), 1.0 / (1.0 - p));
  }
  return mul(x, keep);
}

}  // namespace tessera
