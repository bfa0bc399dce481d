// U-Net (Ronneberger, Fischer & Brox, 2015), assembled explicitly: a contracting path of two
// unpadded 3x3 convolutions + ReLU and a 2x2 max-pool per level (channels width, 2 width, ...),
// dropout at the end of the contracting path, an expanding path of 2x2 up-convolutions that halve
// the channels, crop-and-concatenate with the matching contracting map, two unpadded 3x3
// convolutions + ReLU, and a final 1x1 convolution to the classes. With the paper's settings
// (width 64, depth 4) that is 23 convolutional layers and a 572x572 input gives 388x388.
//
// Parameter names: enc.<l>.conv1/conv2, bottom.conv1/conv2, dec.<l>.up, dec.<l>.conv1/conv2 (l = 0
// is the deepest decoder level), head; with batch norm, bn1/bn2 beside each conv pair.
#pragma once

#include <vector>

#include "layers/layers.h"

namespace tessera {

struct UNetOptions {
  int64_t in_channels = 1;
  int64_t num_classes = 2;
  int64_t width = 64;        // channels of the first level (the paper: 64)
  int64_t depth = 4;         // number of poolings (the paper: 4)
  bool same_padding = false; // pad the 3x3 convolutions (output size = input size)
  bool batch_norm = false;   // a BatchNorm2d after each 3x3 convolution
  double dropout = 0.5;      // at the end of the contracting path (training only)
};

class UNet : public Module {
 public:
  explicit UNet(UNetOptions options = {}, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // [N, in, H, W] -> logits [N, classes, H', W']
  const UNetOptions& options() const { return opts_; }

  // ---- tile arithmetic (per spatial side)
  bool is_valid_input(int64_t size) const;
  int64_t output_size(int64_t input) const;  // an Error for an invalid input, naming the nearest valid ones
  // The input size whose output is exactly `output`; an Error suggesting the nearest valid output.
  int64_t input_size_for_output(int64_t output) const;
  std::vector<int64_t> valid_input_sizes(int64_t lo, int64_t hi) const;
  // The valid input nearest to `size` (ties: the larger).
  int64_t nearest_valid_input(int64_t size) const;
  // (input - output) / 2: the context a tile needs on each side.
  int64_t margin(int64_t input) const { return (input - output_size(input)) / 2; }

 private:
  struct DoubleConv;
  struct UpBlock;
  std::vector<std::shared_ptr<Module>> enc_, dec_;
  std::shared_ptr<Module> bottom_;
  std::shared_ptr<Conv2d> head_;
  std::shared_ptr<Dropout> dropout_;
  UNetOptions opts_;
};

// Reflects an image [.., H, W] outwards by the given amounts, repeating the reflection as often as
// needed (so margins may exceed the image size): the paper's mirror extrapolation.
Tensor mirror_pad(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right);

// The overlap-tile strategy: the image [C, H, W] (or [N, C, H, W]) is covered with output tiles of
// `output_tile` x `output_tile`; each is predicted from its input tile (the output tile plus the
// net's margin, mirror-extrapolated beyond the image) and the logits are stitched together. With
// unpadded convolutions tiles start at multiples of the largest multiple of 2^depth within the
// tile (neighbours overlap by output_tile mod 2^depth pixels), which makes the result the same for
// every tile size and equal to one pass over the mirror-extrapolated image; a tile smaller than
// 2^depth is an Error naming the smallest usable one. Returns logits [N, classes, H, W]. No
// gradient is recorded.
Tensor predict_tiled(UNet& net, const Tensor& image, int64_t output_tile);

}  // namespace tessera
