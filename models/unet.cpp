// U-Net: modules, tile arithmetic, mirror extrapolation and overlap-tile inference.
#include "models/unet.h"

#include <cmath>
#include <sstream>

#include "core/view.h"

namespace tessera {

// Two 3x3 convolutions + ReLU (each optionally followed by batch norm before the ReLU).
struct UNet::DoubleConv : Module {
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  DoubleConv(int64_t in, int64_t out, const UNetOptions& o, Generator* gen) {
    const int64_t pad = o.same_padding ? 1 : 0;
    conv1 = register_module("conv1", std::make_shared<Conv2d>(in, out, 3, 1, pad, 1, 1, true, gen));
    if (o.batch_norm) bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(out));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(out, out, 3, 1, pad, 1, 1, true, gen));
    if (o.batch_norm) bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(out));
    // The paper's initialisation: N(0, sqrt(2 / N)), N = 9 * input channels; zero biases.
    for (auto* c : {conv1.get(), conv2.get()}) {
      init::unet_normal_(c->weight, gen);
      init::constant_(c->bias, 0.0);
    }
  }
  Tensor forward(const Tensor& x) override {
    if (!bn1) return conv2->forward_relu(conv1->forward_relu(x));  // bias and ReLU fused into the convolution
    Tensor y = relu(bn1->forward(conv1->forward(x)));
    return relu(bn2->forward(conv2->forward(y)));
  }
};

// 2x2 up-convolution halving the channels, crop-and-concatenate, DoubleConv.
struct UNet::UpBlock : Module {
  std::shared_ptr<ConvTranspose2d> up;
  std::shared_ptr<DoubleConv> convs;
  UpBlock(int64_t in, int64_t out, const UNetOptions& o, Generator* gen) {
    up = register_module("up", std::make_shared<ConvTranspose2d>(in, out, 2, 2, 0, 0, 1, true, 1, gen));
    // Each output pixel of a 2x2 stride-2 up-convolution sums one tap of each input channel: N = in.
    init::normal_(up->weight, 0.0, std::sqrt(2.0 / static_cast<double>(in)), gen);
    init::constant_(up->bias, 0.0);
    convs = std::make_shared<DoubleConv>(2 * out, out, o, gen);
    // Flatten the pair's names into this block: dec.<l>.conv1, dec.<l>.conv2 (and bn1/bn2).
    register_module("conv1", convs->conv1);
    if (convs->bn1) register_module("bn1", convs->bn1);
    register_module("conv2", convs->conv2);
    if (convs->bn2) register_module("bn2", convs->bn2);
  }
  Tensor forward2(const Tensor& x, const Tensor& skip) {
    Tensor u = up->forward(x);
    // Centre crop of the contracting map to the up-sampled size.
    const int64_t dh = skip.size(2) - u.size(2), dw = skip.size(3) - u.size(3);
    Tensor s = skip.narrow(2, dh / 2, u.size(2)).narrow(3, dw / 2, u.size(3));
    return convs->forward(cat({s, u}, 1));
  }
};

UNet::UNet(UNetOptions o, Generator* gen) : opts_(o) {
  TS_CHECK(o.in_channels > 0 && o.num_classes > 0 && o.width > 0 && o.depth >= 1 && o.depth <= 8,
           "UNet: need positive channels and width, and depth in [1, 8]");
  auto enc = std::make_shared<Sequential>();
  int64_t ch = o.in_channels;
  for (int64_t l = 0; l < o.depth; ++l) {
    const int64_t out = o.width << l;
    auto block = std::make_shared<DoubleConv>(ch, out, o, gen);
    enc->push_back(block);
    enc_.push_back(block);
    ch = out;
  }
  register_module("enc", enc);
  auto bottom = std::make_shared<DoubleConv>(ch, ch * 2, o, gen);
  bottom_ = register_module("bottom", bottom);
  ch *= 2;
  dropout_ = std::make_shared<Dropout>(o.dropout, gen);
  auto dec = std::make_shared<Sequential>();
  for (int64_t l = 0; l < o.depth; ++l) {
    auto block = std::make_shared<UpBlock>(ch, ch / 2, o, gen);
    dec->push_back(block);
    dec_.push_back(block);
    ch /= 2;
  }
  register_module("dec", dec);
  head_ = register_module("head", std::make_shared<Conv2d>(ch, o.num_classes, 1, 1, 0, 1, 1, true, gen));
  init::unet_normal_(head_->weight, gen);
  init::constant_(head_->bias, 0.0);
  register_module("dropout", dropout_);
}

Tensor UNet::forward(const Tensor& x) {
  TS_CHECK(x.defined() && x.dim() == 4 && x.size(1) == opts_.in_channels, "UNet: expected input [N, ", opts_.in_channels,
           ", H, W], got ", x.defined() ? shape_str(x.shape()) : "undefined");
  if (!opts_.same_padding) {
    output_size(x.size(2));  // checks, with a message naming valid sizes
    output_size(x.size(3));
  } else {
    const int64_t k = int64_t{1} << opts_.depth;
    TS_CHECK(x.size(2) % k == 0 && x.size(3) % k == 0, "UNet (same padding): height and width must be multiples of ", k,
             ", got ", x.size(2), " x ", x.size(3));
  }
  std::vector<Tensor> skips;
  Tensor y = x;
  for (auto& e : enc_) {
    y = e->forward(y);
    skips.push_back(y);
    y = max_pool2d(y, 2);
  }
  y = dropout_->forward(bottom_->forward(y));
  for (size_t l = 0; l < dec_.size(); ++l)
    y = static_cast<UpBlock*>(dec_[l].get())->forward2(y, skips[skips.size() - 1 - l]);
  return head_->forward(y);
}

// ---- tile arithmetic. Down: s -> s - 4 (two valid 3x3 convs), must be even, s -> s / 2. Bottom:
// s -> s - 4. Up: s -> 2 s - 4. Every valid input is therefore input(b) for a bottom size b >= 1.

namespace {
int64_t input_for_bottom(int64_t b, int64_t depth) {
  int64_t s = b + 4;
  for (int64_t l = 0; l < depth; ++l) s = 2 * s + 4;
  return s;
}
int64_t output_for_bottom(int64_t b, int64_t depth) {
  int64_t o = b;
  for (int64_t l = 0; l < depth; ++l) o = 2 * o - 4;
  return o;
}
}  // namespace

bool UNet::is_valid_input(int64_t size) const {
  if (opts_.same_padding) return size > 0 && size % (int64_t{1} << opts_.depth) == 0;
  int64_t s = size;
  for (int64_t l = 0; l < opts_.depth; ++l) {
    s -= 4;
    if (s <= 0 || s % 2 != 0) return false;
    s /= 2;
  }
  s -= 4;
  return s >= 1 && output_for_bottom(s, opts_.depth) >= 1;
}

std::vector<int64_t> UNet::valid_input_sizes(int64_t lo, int64_t hi) const {
  std::vector<int64_t> out;
  for (int64_t s = std::max<int64_t>(lo, 1); s <= hi; ++s)
    if (is_valid_input(s)) out.push_back(s);
  return out;
}

int64_t UNet::nearest_valid_input(int64_t size) const {
  for (int64_t d = 0;; ++d) {
    if (is_valid_input(size + d)) return size + d;
    if (size - d > 0 && is_valid_input(size - d)) return size - d;
  }
}

int64_t UNet::output_size(int64_t input) const {
  if (opts_.same_padding) {
    TS_CHECK(is_valid_input(input), "UNet: input size ", input, " is not a multiple of ", int64_t{1} << opts_.depth);
    return input;
  }
  if (!is_valid_input(input)) {
    int64_t below = 0, above = input + 1;
    for (int64_t s = input - 1; s > 0 && below == 0; --s)
      if (is_valid_input(s)) below = s;
    while (!is_valid_input(above)) ++above;
    const std::string why = "UNet: input size " + std::to_string(input) + " is not valid for unpadded convolutions at depth " +
                            std::to_string(opts_.depth) + " (every level must stay even); ";
    if (below == 0) TS_ERROR(why, "the smallest valid size is ", above);
    TS_ERROR(why, "the nearest valid sizes are ", below, " and ", above);
  }
  int64_t s = input;
  for (int64_t l = 0; l < opts_.depth; ++l) s = (s - 4) / 2;
  return output_for_bottom(s - 4, opts_.depth);
}

int64_t UNet::input_size_for_output(int64_t output) const {
  if (opts_.same_padding) return output_size(output);
  const int64_t k = int64_t{1} << opts_.depth;
  const int64_t num = output + 4 * (k - 1);
  if (output >= 1 && num % k == 0) return input_for_bottom(num / k, opts_.depth);
  // Suggest the valid outputs around the request.
  const int64_t b_lo = std::max<int64_t>(1, num / k), b_hi = b_lo + 1;
  int64_t lo = output_for_bottom(b_lo, opts_.depth), hi = output_for_bottom(b_hi, opts_.depth);
  while (lo < 1) lo = output_for_bottom(b_lo + 1, opts_.depth), hi = output_for_bottom(b_lo + 2, opts_.depth);
  TS_ERROR("UNet: an output tile of ", output, " is not possible at depth ", opts_.depth, "; the nearest are ", lo,
           " (input ", input_for_bottom((lo + 4 * (k - 1)) / k, opts_.depth), ") and ", hi, " (input ",
           input_for_bottom((hi + 4 * (k - 1)) / k, opts_.depth), ")");
}

// ---- mirror extrapolation and overlap-tile inference

namespace {
int64_t mirror_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

Tensor mirror_indices(int64_t n, int64_t before, int64_t after, Device device) {
  std::vector<int64_t> idx;
  for (int64_t i = -before; i < n + after; ++i) idx.push_back(mirror_index(i, n));
  return from_vector<int64_t>(idx, {}, device);
}
}  // namespace

Tensor mirror_pad(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  TS_CHECK(x.defined() && x.dim() >= 2, "mirror_pad: expected [.., H, W]");
  TS_CHECK(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "mirror_pad: margins must be non-negative");
  const int64_t H = x.size(-2), W = x.size(-1);
  Tensor y = index_select(x, x.dim() - 2, mirror_indices(H, top, bottom, x.device()));
  return index_select(y, x.dim() - 1, mirror_indices(W, left, right, x.device()));
}

Tensor predict_tiled(UNet& net, const Tensor& image_in, int64_t output_tile) {
  TS_CHECK(image_in.defined() && (image_in.dim() == 3 || image_in.dim() == 4), "predict_tiled: expected [C, H, W] or [N, C, H, W]");
  NoGradGuard no_grad;
  Tensor image = image_in.dim() == 3 ? image_in.unsqueeze(0) : image_in;
  const int64_t H = image.size(2), W = image.size(3);
  const int64_t in_tile = net.input_size_for_output(output_tile);
  const int64_t m = (in_tile - output_tile) / 2;
  // Unpadded, the net commutes with shifts of its input by multiples of 2^depth only (the pooling
  // grid), so tiles are placed at multiples of the largest such step within the output tile; the
  // few pixels two neighbours both predict are the same, and the later tile's are kept.
  const int64_t grid = int64_t{1} << net.options().depth;
  int64_t step = output_tile;
  if (!net.options().same_padding) {
    step = output_tile / grid * grid;
    if (step == 0) {
      int64_t smallest = grid;
      while (!net.is_valid_input(smallest + 2 * m)) ++smallest;
      TS_ERROR("predict_tiled: an output tile of ", output_tile, " is smaller than the pooling grid (2^depth = ", grid,
               "), so its tiles cannot be placed where a whole-image pass would see the same input; the smallest usable tile is ",
               smallest, " (input ", smallest + 2 * m, ")");
    }
  }
  auto tiles = [&](int64_t size) { return size <= output_tile ? int64_t{1} : 1 + (size - output_tile + step - 1) / step; };
  const int64_t ty = tiles(H), tx = tiles(W);
  const int64_t ey = (ty - 1) * step + output_tile, ex = (tx - 1) * step + output_tile;  // the area covered
  Tensor padded = mirror_pad(image, m, m + ey - H, m, m + ex - W);
  Tensor out = zeros({image.size(0), net.options().num_classes, ey, ex}, options(image.dtype(), image.device()));
  for (int64_t i = 0; i < ty; ++i)
    for (int64_t j = 0; j < tx; ++j) {
      Tensor tile = padded.narrow(2, i * step, in_tile).narrow(3, j * step, in_tile).contiguous();
      Tensor logits = net.forward(tile);
      raw::copy_(raw::narrow(raw::narrow(out, 2, i * step, output_tile), 3, j * step, output_tile), logits);
    }
  return out.narrow(2, 0, H).narrow(3, 0, W).contiguous();
}

}  // namespace tessera
