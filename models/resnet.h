// ResNet (He et al., 2015) as torchvision builds it: ResNet-18/34 from basic blocks, ResNet-50/101/152
// from bottleneck blocks (stride on the 3x3, "ResNet v1.5"). The first block of each stage is the
// paper's convolution block (a 1x1 projection shortcut, "downsample"), the others identity blocks.
//
// Parameter names are torchvision's: conv1, bn1, layer<k>.<i>.conv1/bn1/.../downsample.0/.1, fc.
// For detection the norm layers are FrozenBatchNorm2d (statistics and affine fixed) and only the
// last `trainable_layers` stages learn, as in torchvision's resnet_fpn_backbone.
#pragma once

#include <array>
#include <vector>

#include "layers/layers.h"

namespace tessera {

struct ResNetOptions {
  int64_t depth = 50;            // 18, 34, 50, 101 or 152
  bool frozen_batch_norm = true; // FrozenBatchNorm2d (detection) or BatchNorm2d (classification)
  // How many of layer4, layer3, layer2, layer1, conv1 (in that order) train; 5 = all (with bn1).
  int64_t trainable_layers = 5;
  int64_t num_classes = 0;       // > 0 adds the classifier (avgpool + fc)
  // > 0: GroupNorm with this many groups instead of either batch norm (same parameter names, no
  // running statistics), for training from scratch with a batch of a few images, where batch
  // statistics differ from image to image (He et al., "Rethinking ImageNet Pre-training", 2018).
  int64_t group_norm_groups = 0;
};

class ResNet : public Module {
 public:
  explicit ResNet(ResNetOptions options = {}, Generator* gen = nullptr);
  // C2..C5: the outputs of layer1..layer4 (strides 4, 8, 16, 32).
  std::vector<Tensor> features(const Tensor& x);
  // Classification logits [N, num_classes] (needs num_classes > 0).
  Tensor forward(const Tensor& x) override;
  // Output channels of layer1..layer4: 64..512 (basic) or 256..2048 (bottleneck).
  std::array<int64_t, 4> stage_channels() const;
  const ResNetOptions& options() const { return opts_; }

 private:
  ResNetOptions opts_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<Module> bn1_;
  std::array<std::shared_ptr<Sequential>, 4> layers_;
  std::shared_ptr<Linear> fc_;
};

// torchvision.models.resnet18() ... resnet152(): classification defaults (BatchNorm2d, all layers
// trainable, avgpool + fc to num_classes = 1000 ImageNet classes), torchvision's parameter names.
std::shared_ptr<ResNet> resnet18(int64_t num_classes = 1000, Generator* gen = nullptr);
std::shared_ptr<ResNet> resnet34(int64_t num_classes = 1000, Generator* gen = nullptr);
std::shared_ptr<ResNet> resnet50(int64_t num_classes = 1000, Generator* gen = nullptr);
std::shared_ptr<ResNet> resnet101(int64_t num_classes = 1000, Generator* gen = nullptr);
std::shared_ptr<ResNet> resnet152(int64_t num_classes = 1000, Generator* gen = nullptr);

}  // namespace tessera
