// Feature Pyramid Network (Lin et al., 2017) as torchvision builds it: a lateral 1x1 convolution per
// input level ("inner_blocks.<i>.0"), nearest-neighbour top-down merges, a 3x3 output convolution
// per level ("layer_blocks.<i>.0"), and P6 as a 1x1 stride-2 max-pool of the top output
// (LastLevelMaxPool). BackboneWithFPN puts a ResNet ("body") under it ("fpn").
#pragma once

#include <vector>

#include "models/resnet.h"

namespace tessera {

class FeaturePyramidNetwork : public Module {
 public:
  FeaturePyramidNetwork(const std::vector<int64_t>& in_channels, int64_t out_channels = 256, bool last_level_max_pool = true,
                        Generator* gen = nullptr);
  // Inputs C2..C5 (finest first) -> P2..P5 (+ P6), all with out_channels channels.
  std::vector<Tensor> forward_levels(const std::vector<Tensor>& inputs);
  int64_t out_channels() const { return out_channels_; }

 private:
  std::vector<std::shared_ptr<Conv2d>> inner_, layer_;
  int64_t out_channels_;
  bool max_pool_;
};

class BackboneWithFPN : public Module {
 public:
  BackboneWithFPN(const ResNetOptions& resnet, int64_t out_channels = 256, Generator* gen = nullptr);
  // The pyramid P2..P6 of an image batch [N, 3, H, W] (strides 4, 8, 16, 32, 64).
  std::vector<Tensor> forward_levels(const Tensor& images);
  ResNet& body() { return *body_; }
  int64_t out_channels() const { return fpn_->out_channels(); }

 private:
  std::shared_ptr<ResNet> body_;
  std::shared_ptr<FeaturePyramidNetwork> fpn_;
};

}  // namespace tessera
