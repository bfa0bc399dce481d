// Standard layers.
#include "layers/layers.h"

#include <cmath>

namespace tessera {

namespace {

// PyTorch's reset_parameters for Conv/Linear: weight kaiming_uniform_(a = sqrt(5)), bias
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void default_init(Tensor& weight, Tensor& bias, Generator* gen) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(init::fans(weight).first));
    init::uniform_(bias, -bound, bound, gen);
  }
}

}  // namespace

Conv2d::Conv2d(int64_t in, int64_t out, Int2 k, Int2 stride_, Int2 padding_, Int2 dilation_, int64_t groups_, bool use_bias,
               Generator* gen)
    : stride(stride_), padding(padding_), dilation(dilation_), groups(groups_) {
  TS_CHECK(in > 0 && out > 0 && groups > 0 && in % groups == 0 && out % groups == 0, "Conv2d: channels (", in, " -> ",
           out, ") must be positive and divisible by groups (", groups, ")");
  weight = empty({out, in / groups, k.h, k.w});
  if (use_bias) bias = empty({out});
  default_init(weight, bias, gen);
  register_parameter("weight", &weight);
  if (use_bias) register_parameter("bias", &bias);
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, stride, padding, dilation, groups); }
Tensor Conv2d::forward_relu(const Tensor& x) { return conv2d_relu(x, weight, bias, stride, padding, dilation, groups); }

ConvTranspose2d::ConvTranspose2d(int64_t in, int64_t out, Int2 k, Int2 stride_, Int2 padding_, Int2 output_padding_,
                                 int64_t groups_, bool use_bias, Int2 dilation_, Generator* gen)
    : stride(stride_), padding(padding_), output_padding(output_padding_), dilation(dilation_), groups(groups_) {
  TS_CHECK(in > 0 && out > 0 && groups > 0 && in % groups == 0 && out % groups == 0, "ConvTranspose2d: channels (", in,
           " -> ", out, ") must be positive and divisible by groups (", groups, ")");
  weight = empty({in, out / groups, k.h, k.w});
  if (use_bias) bias = empty({out});
  default_init(weight, bias, gen);
  register_parameter("weight", &weight);
  if (use_bias) register_parameter("bias", &bias);
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation);
}

Linear::Linear(int64_t in, int64_t out, bool use_bias, Generator* gen) {
  TS_CHECK(in > 0 && out > 0, "Linear: features must be positive, got ", in, " -> ", out);
  weight = empty({out, in});
  if (use_bias) bias = empty({out});
  default_init(weight, bias, gen);
  register_parameter("weight", &weight);
  if (use_bias) register_parameter("bias", &bias);
}

Tensor Linear::forward(const Tensor& x) {
  return linear(x, weight, bias);
}

BatchNorm2d::BatchNorm2d(int64_t c, double eps_, double momentum_, bool affine, bool track) : eps(eps_), momentum(momentum_) {
  TS_CHECK(c > 0, "BatchNorm2d: num_features must be positive, got ", c);
  if (affine) {
    weight = ones({c});
    bias = zeros({c});
    register_parameter("weight", &weight);
    register_parameter("bias", &bias);
  }
  if (track) {
    running_mean = zeros({c});
    running_var = ones({c});
    num_batches_tracked = zeros({}, kInt64);
    register_buffer("running_mean", &running_mean);
    register_buffer("running_var", &running_var);
    register_buffer("num_batches_tracked", &num_batches_tracked);
  }
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  TS_CHECK(x.defined() && x.dim() == 4, "BatchNorm2d: expected a 4-D input, got ", x.defined() ? shape_str(x.shape()) : "undefined");
  if (is_training() && num_batches_tracked.defined()) {
    NoGradGuard g;
    add_(num_batches_tracked, ones({}, options(kInt64, num_batches_tracked.device())));
  }
  return batch_norm(x, running_mean, running_var, weight, bias, is_training(), momentum, eps);
}

FrozenBatchNorm2d::FrozenBatchNorm2d(int64_t c, double eps_) : eps(eps_) {
  weight = ones({c});
  bias = zeros({c});
  running_mean = zeros({c});
  running_var = ones({c});
  register_buffer("weight", &weight);
  register_buffer("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
}

GroupNorm::GroupNorm(int64_t groups, int64_t c, double eps_, bool affine) : num_groups(groups), eps(eps_) {
  TS_CHECK(groups > 0 && c > 0 && c % groups == 0, "GroupNorm: ", c, " channels cannot be split into ", groups, " groups");
  if (affine) {
    weight = ones({c});
    bias = zeros({c});
    register_parameter("weight", &weight);
    register_parameter("bias", &bias);
  }
}
Tensor GroupNorm::forward(const Tensor& x) { return group_norm(x, num_groups, weight, bias, eps); }

Tensor FrozenBatchNorm2d::forward(const Tensor& x) { return frozen_batch_norm(x, weight, bias, running_mean, running_var, eps); }

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : modules_) y = m->forward(y);
  return y;
}

}  // namespace tessera
