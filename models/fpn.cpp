// FPN and the ResNet-FPN backbone.
#include "models/fpn.h"

#include "layers/init.h"

namespace tessera {

FeaturePyramidNetwork::FeaturePyramidNetwork(const std::vector<int64_t>& in_channels, int64_t out_channels,
                                             bool last_level_max_pool, Generator* gen)
    : out_channels_(out_channels), max_pool_(last_level_max_pool) {
  TS_CHECK(!in_channels.empty() && out_channels > 0, "FeaturePyramidNetwork: need input levels and positive out_channels");
  auto inner = std::make_shared<Sequential>(), layer = std::make_shared<Sequential>();
  for (int64_t c : in_channels) {
    // torchvision wraps each convolution in a Conv2dNormActivation without norm or activation:
    // hence the ".0" in "inner_blocks.<i>.0.weight". Init: kaiming_uniform_(a=1), zero bias.
    auto i_block = std::make_shared<Sequential>(), l_block = std::make_shared<Sequential>();
    auto i_conv = i_block->push_back(std::make_shared<Conv2d>(c, out_channels, 1, 1, 0, 1, 1, true, gen));
    auto l_conv = l_block->push_back(std::make_shared<Conv2d>(out_channels, out_channels, 3, 1, 1, 1, 1, true, gen));
    for (auto* conv : {i_conv.get(), l_conv.get()}) {
      init::kaiming_uniform_(conv->weight, 1.0, gen);
      init::constant_(conv->bias, 0.0);
    }
    inner->push_back(i_block);
    layer->push_back(l_block);
    inner_.push_back(i_conv);
    layer_.push_back(l_conv);
  }
  register_module("inner_blocks", inner);
  register_module("layer_blocks", layer);
}

std::vector<Tensor> FeaturePyramidNetwork::forward_levels(const std::vector<Tensor>& x) {
  TS_CHECK(x.size() == inner_.size(), "FeaturePyramidNetwork: expected ", inner_.size(), " input levels, got ", x.size());
  const size_t n = x.size();
  std::vector<Tensor> out(n);
  Tensor last_inner = inner_[n - 1]->forward(x[n - 1]);
  out[n - 1] = layer_[n - 1]->forward(last_inner);
  for (size_t k = n - 1; k-- > 0;) {
    Tensor lateral = inner_[k]->forward(x[k]);
    Tensor top_down = interpolate(last_inner, Int2{lateral.size(2), lateral.size(3)}, std::nullopt, "nearest");
    last_inner = add(lateral, top_down);
    out[k] = layer_[k]->forward(last_inner);
  }
  if (max_pool_) out.push_back(max_pool2d(out.back(), 1, 2, 0));
  return out;
}

BackboneWithFPN::BackboneWithFPN(const ResNetOptions& resnet, int64_t out_channels, Generator* gen) {
  ResNetOptions o = resnet;
  o.num_classes = 0;
  body_ = register_module("body", std::make_shared<ResNet>(o, gen));
  const auto c = body_->stage_channels();
  fpn_ = register_module("fpn", std::make_shared<FeaturePyramidNetwork>(std::vector<int64_t>(c.begin(), c.end()), out_channels,
                                                                         true, gen));
}

std::vector<Tensor> BackboneWithFPN::forward_levels(const Tensor& images) { return fpn_->forward_levels(body_->features(images)); }

}  // namespace tessera
