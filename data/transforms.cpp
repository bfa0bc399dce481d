// Detection transforms.
#include "data/transforms.h"

#include <cmath>

#include "autograd/ops.h"
#include "core/view.h"

namespace tessera {

Tensor normalize_image(const Tensor& image, const std::vector<double>& mean, const std::vector<double>& std_) {
  TS_CHECK(image.defined() && image.dim() == 3 && is_floating(image.dtype()), "normalize_image: expected a float [C, H, W] image");
  const int64_t C = image.size(0);
  TS_CHECK(static_cast<int64_t>(mean.size()) == C && static_cast<int64_t>(std_.size()) == C, "normalize_image: ", C,
           " channels but ", mean.size(), " means and ", std_.size(), " stds");
  std::vector<float> m(mean.begin(), mean.end()), s(std_.begin(), std_.end());
  for (float v : s) TS_CHECK(v > 0, "normalize_image: std must be positive");
  Tensor mt = from_vector<float>(m, {C, 1, 1}, image.device()).to(image.dtype());
  Tensor st = from_vector<float>(s, {C, 1, 1}, image.device()).to(image.dtype());
  return div(sub(image, mt), st);
}

std::pair<int64_t, int64_t> detection_resize_size(int64_t h, int64_t w, double min_size, double max_size) {
  TS_CHECK(h > 0 && w > 0 && min_size > 0 && max_size > 0, "detection resize: sizes must be positive");
  // torchvision: scale = torch.min(self_min_size / min_side, self_max_size / max_side) in float32,
  // then interpolate(scale_factor=scale.item(), recompute_scale_factor=True): floor(side * scale).
  // A Python number divided by a tensor is reciprocal(tensor) * number in PyTorch: 160 / 100 gives
  // 1.5999999 (not 1.6000000), and a 150 x 100 image becomes 239 x 159.
  const float min_side = static_cast<float>(std::min(h, w)), max_side = static_cast<float>(std::max(h, w));
  const float scale = std::min((1.0f / min_side) * static_cast<float>(min_size), (1.0f / max_side) * static_cast<float>(max_size));
  const double s = static_cast<double>(scale);
  return {static_cast<int64_t>(std::floor(static_cast<double>(h) * s)), static_cast<int64_t>(std::floor(static_cast<double>(w) * s))};
}

Tensor resize_boxes(const Tensor& boxes, std::pair<int64_t, int64_t> original, std::pair<int64_t, int64_t> resized) {
  if (!boxes.defined() || boxes.numel() == 0) return boxes;
  // torchvision: ratios as float32 tensors, new / original.
  const float rh = static_cast<float>(resized.first) / static_cast<float>(original.first);
  const float rw = static_cast<float>(resized.second) / static_cast<float>(original.second);
  Tensor ratios = from_vector<float>({rw, rh, rw, rh}, {1, 4}, boxes.device()).to(boxes.dtype());
  return mul(boxes, ratios);
}

Sample resize_for_detection(const Sample& s, double min_size, double max_size) {
  TS_CHECK(s.image.defined() && s.image.dim() == 3, "resize_for_detection: the sample needs an image [C, H, W]");
  const int64_t h = s.image.size(1), w = s.image.size(2);
  const auto [nh, nw] = detection_resize_size(h, w, min_size, max_size);
  Sample r = s;
  r.image = interpolate(s.image.unsqueeze(0), Int2{nh, nw}, std::nullopt, "bilinear", false).squeeze(0);
  if (s.masks.defined() && s.masks.size(0) > 0)
    r.masks = interpolate(s.masks.to(kFloat32).unsqueeze(1), Int2{nh, nw}).squeeze(1).to(kUInt8);
  else if (s.masks.defined())
    r.masks = zeros({0, nh, nw}, kUInt8);
  r.boxes = resize_boxes(s.boxes, {h, w}, {nh, nw});
  return r;
}

ImageBatch batch_images(const std::vector<Tensor>& images, int64_t size_divisible) {
  TS_CHECK(!images.empty(), "batch_images: no images");
  TS_CHECK(size_divisible >= 1, "batch_images: size_divisible must be positive");
  const Tensor& first = images[0];
  int64_t C = first.size(0), H = 0, W = 0;
  ImageBatch b;
  for (const Tensor& im : images) {
    TS_CHECK(im.dim() == 3 && im.size(0) == C && im.dtype() == first.dtype() && im.device() == first.device(),
             "batch_images: images must be [C, H, W] with one channel count, dtype and device");
    H = std::max(H, im.size(1));
    W = std::max(W, im.size(2));
    b.sizes.emplace_back(im.size(1), im.size(2));
  }
  H = (H + size_divisible - 1) / size_divisible * size_divisible;
  W = (W + size_divisible - 1) / size_divisible * size_divisible;
  b.images = zeros({static_cast<int64_t>(images.size()), C, H, W}, options(first.dtype(), first.device()));
  NoGradGuard g;
  for (size_t i = 0; i < images.size(); ++i)
    raw::copy_(raw::narrow(raw::narrow(raw::select(b.images, 0, static_cast<int64_t>(i)), 1, 0, images[i].size(1)), 2, 0,
                           images[i].size(2)),
               images[i]);
  return b;
}

}  // namespace tessera
