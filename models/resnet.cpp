// ResNet: basic and bottleneck blocks, the stem, stages and the trainable-stage rule.
#include "models/resnet.h"

#include <algorithm>
#include <string>

#include "layers/init.h"

namespace tessera {

namespace {

struct NormSpec {
  bool frozen;
  int64_t groups;  // > 0: GroupNorm
};

std::shared_ptr<Module> make_norm(int64_t channels, NormSpec n) {
  if (n.groups > 0) return std::make_shared<GroupNorm>(n.groups, channels);
  if (n.frozen) return std::make_shared<FrozenBatchNorm2d>(channels);
  return std::make_shared<BatchNorm2d>(channels);
}

// torchvision's ResNet init: kaiming_normal_(fan_out, relu) for convolutions; norms at (1, 0).
std::shared_ptr<Conv2d> make_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad, Generator* gen) {
  auto c = std::make_shared<Conv2d>(in, out, k, stride, pad, 1, 1, false, gen);
  init::kaiming_normal_(c->weight, "fan_out", gen);
  return c;
}

// The paper's convolution block shortcut: 1x1 convolution (with the block's stride) + norm.
std::shared_ptr<Sequential> make_downsample(int64_t in, int64_t out, int64_t stride, NormSpec norm, Generator* gen) {
  auto d = std::make_shared<Sequential>();
  d->push_back(make_conv(in, out, 1, stride, 0, gen));
  d->push_back(make_norm(out, norm));
  return d;
}

// conv, then norm, then (if then_relu) ReLU. A FrozenBatchNorm is an affine map per output channel,
// x * s + (b - mean * s) with s = weight / sqrt(var + eps): conv2d_scale_shift applies it, and the
// ReLU, as each band of the convolution's output is written, one pass instead of three, with the
// same arithmetic as the three ops (tested; folding s into the weights instead would round
// differently from torchvision). BatchNorm and GroupNorm depend on the batch or the image and run
// as they are.
Tensor conv_norm(Conv2d& conv, Module& norm, const Tensor& x, bool then_relu) {
  if (const auto* f = dynamic_cast<const FrozenBatchNorm2d*>(&norm); f != nullptr && !conv.bias.defined()) {
    Tensor scale, shift;
    {
      NoGradGuard no_grad;
      scale = mul(f->weight, rsqrt(add(f->running_var, f->eps)));
      shift = sub(f->bias, mul(f->running_mean, scale));
    }
    return conv2d_scale_shift(x, conv.weight, scale, shift, then_relu, conv.stride, conv.padding, conv.dilation, conv.groups);
  }
  Tensor y = norm.forward(conv.forward(x));
  return then_relu ? relu(y) : y;
}

// The block's shortcut: x itself, or the downsample's conv + norm.
Tensor shortcut(const std::shared_ptr<Sequential>& downsample, const Tensor& x) {
  if (!downsample) return x;
  return conv_norm(static_cast<Conv2d&>(*(*downsample)[0]), *(*downsample)[1], x, false);
}

struct BasicBlock : Module {
  static constexpr int64_t kExpansion = 1;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<Module> bn1, bn2;
  std::shared_ptr<Sequential> downsample;
  BasicBlock(int64_t in, int64_t planes, int64_t stride, NormSpec norm, Generator* gen) {
    conv1 = register_module("conv1", make_conv(in, planes, 3, stride, 1, gen));
    bn1 = register_module("bn1", make_norm(planes, norm));
    conv2 = register_module("conv2", make_conv(planes, planes, 3, 1, 1, gen));
    bn2 = register_module("bn2", make_norm(planes, norm));
    if (stride != 1 || in != planes) downsample = register_module("downsample", make_downsample(in, planes, stride, norm, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = conv_norm(*conv1, *bn1, x, true);
    y = conv_norm(*conv2, *bn2, y, false);
    return relu(add(y, shortcut(downsample, x)));
  }
};

struct Bottleneck : Module {
  static constexpr int64_t kExpansion = 4;
  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<Module> bn1, bn2, bn3;
  std::shared_ptr<Sequential> downsample;
  Bottleneck(int64_t in, int64_t planes, int64_t stride, NormSpec norm, Generator* gen) {
    const int64_t out = planes * kExpansion;
    conv1 = register_module("conv1", make_conv(in, planes, 1, 1, 0, gen));
    bn1 = register_module("bn1", make_norm(planes, norm));
    conv2 = register_module("conv2", make_conv(planes, planes, 3, stride, 1, gen));
    bn2 = register_module("bn2", make_norm(planes, norm));
    conv3 = register_module("conv3", make_conv(planes, out, 1, 1, 0, gen));
    bn3 = register_module("bn3", make_norm(out, norm));
    if (stride != 1 || in != out) downsample = register_module("downsample", make_downsample(in, out, stride, norm, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = conv_norm(*conv1, *bn1, x, true);
    y = conv_norm(*conv2, *bn2, y, true);
    y = conv_norm(*conv3, *bn3, y, false);
    return relu(add(y, shortcut(downsample, x)));
  }
};

std::array<int64_t, 4> blocks_per_stage(int64_t depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34: return {3, 4, 6, 3};
    case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
    case 152: return {3, 8, 36, 3};
  }
  TS_ERROR("ResNet: depth must be 18, 34, 50, 101 or 152, got ", depth);
}

}  // namespace

ResNet::ResNet(ResNetOptions o, Generator* gen) : opts_(o) {
  const std::array<int64_t, 4> blocks = blocks_per_stage(o.depth);
  TS_CHECK(o.trainable_layers >= 0 && o.trainable_layers <= 5, "ResNet: trainable_layers must be in [0, 5], got ",
           o.trainable_layers);
  const bool bottleneck = o.depth >= 50;
  TS_CHECK(o.group_norm_groups >= 0 && 64 % std::max<int64_t>(o.group_norm_groups, 1) == 0,
           "ResNet: group_norm_groups must divide 64 (the narrowest norm), got ", o.group_norm_groups);
  const NormSpec norm{o.frozen_batch_norm, o.group_norm_groups};
  conv1_ = register_module("conv1", make_conv(3, 64, 7, 2, 3, gen));
  bn1_ = register_module("bn1", make_norm(64, norm));
  int64_t in = 64;
  for (int s = 0; s < 4; ++s) {
    const int64_t planes = int64_t{64} << s;
    auto stage = std::make_shared<Sequential>();
    for (int64_t b = 0; b < blocks[s]; ++b) {
      const int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      if (bottleneck) {
        stage->push_back(std::make_shared<Bottleneck>(in, planes, stride, norm, gen));
        in = planes * Bottleneck::kExpansion;
      } else {
        stage->push_back(std::make_shared<BasicBlock>(in, planes, stride, norm, gen));
        in = planes * BasicBlock::kExpansion;
      }
    }
    layers_[s] = register_module("layer" + std::to_string(s + 1), stage);
  }
  if (o.num_classes > 0) fc_ = register_module("fc", std::make_shared<Linear>(in, o.num_classes, true, gen));
  // torchvision's rule: of ["layer4", "layer3", "layer2", "layer1", "conv1"] the first
  // trainable_layers train (all five: bn1 too); every other parameter is frozen.
  const std::vector<std::string> order = {"layer4", "layer3", "layer2", "layer1", "conv1"};
  std::vector<std::string> train(order.begin(), order.begin() + o.trainable_layers);
  if (o.trainable_layers == 5) train.push_back("bn1");
  if (fc_) train.push_back("fc");
  for (auto& [name, p] : named_parameters()) {
    bool trains = false;
    for (const std::string& prefix : train) trains = trains || name.rfind(prefix, 0) == 0;
    if (!trains) p.requires_grad_(false);
  }
}

std::array<int64_t, 4> ResNet::stage_channels() const {
  const int64_t e = opts_.depth >= 50 ? 4 : 1;
  return {64 * e, 128 * e, 256 * e, 512 * e};
}

std::vector<Tensor> ResNet::features(const Tensor& x) {
  TS_CHECK(x.dim() == 4 && x.size(1) == 3, "ResNet: input must be [N, 3, H, W], got ", shape_str(x.shape()));
  Tensor y = max_pool2d(conv_norm(*conv1_, *bn1_, x, true), 3, 2, 1);
  std::vector<Tensor> out;
  for (auto& stage : layers_) {
    y = stage->forward(y);
    out.push_back(y);
  }
  return out;
}

Tensor ResNet::forward(const Tensor& x) {
  TS_CHECK(fc_ != nullptr, "ResNet: forward needs num_classes > 0 (use features() for the backbone)");
  Tensor c5 = features(x).back();
  return fc_->forward(mean(c5, {2, 3}));
}

namespace {
std::shared_ptr<ResNet> classifier(int64_t depth, int64_t num_classes, Generator* gen) {
  TS_CHECK(num_classes > 0, "resnet", depth, ": num_classes must be positive, got ", num_classes);
  ResNetOptions o;
  o.depth = depth;
  o.frozen_batch_norm = false;
  o.trainable_layers = 5;
  o.num_classes = num_classes;
  return std::make_shared<ResNet>(o, gen);
}
}  // namespace

std::shared_ptr<ResNet> resnet18(int64_t num_classes, Generator* gen) { return classifier(18, num_classes, gen); }
std::shared_ptr<ResNet> resnet34(int64_t num_classes, Generator* gen) { return classifier(34, num_classes, gen); }
std::shared_ptr<ResNet> resnet50(int64_t num_classes, Generator* gen) { return classifier(50, num_classes, gen); }
std::shared_ptr<ResNet> resnet101(int64_t num_classes, Generator* gen) { return classifier(101, num_classes, gen); }
std::shared_ptr<ResNet> resnet152(int64_t num_classes, Generator* gen) { return classifier(152, num_classes, gen); }

}  // namespace tessera
