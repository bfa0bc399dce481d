// Driver helpers.
#include "drivers/common.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "core/view.h"

namespace tessera::driver {

namespace {
Tensor as_rgb(const Tensor& t_in) {
  Tensor t = t_in.to(kCPU).to(kFloat32);
  if (t.dim() == 2) t = t.unsqueeze(0);
  TS_CHECK(t.dim() == 3 && (t.size(0) == 1 || t.size(0) == 3), "panel: images must be [1 or 3, H, W] or [H, W]");
  return t.size(0) == 3 ? t : t.expand({3, t.size(1), t.size(2)}).contiguous();
}
}  // namespace

Tensor panel(const std::vector<Tensor>& images) {
  TS_CHECK(!images.empty(), "panel: no images");
  NoGradGuard g;
  int64_t H = 0;
  std::vector<Tensor> rgb;
  for (const Tensor& im : images) {
    rgb.push_back(as_rgb(im));
    H = std::max(H, rgb.back().size(1));
  }
  std::vector<Tensor> columns;
  for (size_t i = 0; i < rgb.size(); ++i) {
    Tensor& t = rgb[i];
    if (t.size(1) < H) t = cat({t, zeros({3, H - t.size(1), t.size(2)})}, 1);
    columns.push_back(t);
    if (i + 1 < rgb.size()) columns.push_back(ones({3, H, 4}));  // a white gutter
  }
  return cat(columns, 2);
}

Tensor overlay(const Tensor& image, const Tensor& mask, std::vector<float> color, float alpha) {
  NoGradGuard g;
  Tensor base = as_rgb(image);
  TS_CHECK(mask.dim() == 2 && mask.size(0) == base.size(1) && mask.size(1) == base.size(2), "overlay: the mask must be [H, W] of the image");
  Tensor on = ne(mask.to(kCPU), 0.0).unsqueeze(0);
  Tensor tint = from_vector<float>(color, {3, 1, 1});
  return where(on, add(mul(base, 1.0 - alpha), mul(tint, alpha)), base);
}

Tensor label_image(const Tensor& labels, int64_t num_classes) {
  NoGradGuard g;
  return div(labels.to(kCPU).to(kFloat32), static_cast<double>(std::max<int64_t>(1, num_classes - 1))).unsqueeze(0);
}

JsonLines::JsonLines(const std::string& path, bool append) : path_(path) {
  out_.open(path, append ? std::ios::app : std::ios::trunc);
  TS_CHECK(out_.good(), "cannot open '", path, "' for writing");
}

namespace {
nlohmann::json to_json(const std::map<std::string, double>& values, const std::map<std::string, std::string>& text) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : values) j[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  for (const auto& [k, v] : text) j[k] = v;
  return j;
}
}  // namespace

void write_json(const std::string& path, const std::map<std::string, double>& values,
                const std::map<std::string, std::string>& text) {
  const std::string s = to_json(values, text).dump(2) + "\n";
  write_file_atomic(path, [&](std::ostream& o) { o << s; });
}

void JsonLines::write(const std::map<std::string, double>& values, const std::map<std::string, std::string>& text) {
  out_ << to_json(values, text).dump() << "\n";
  out_.flush();
  TS_CHECK(out_.good(), "writing '", path_, "' failed");
}

std::map<std::string, std::string> unet_metadata(const UNetOptions& o) {
  return {{"model", "unet"},
          {"unet.in_channels", std::to_string(o.in_channels)},
          {"unet.num_classes", std::to_string(o.num_classes)},
          {"unet.width", std::to_string(o.width)},
          {"unet.depth", std::to_string(o.depth)},
          {"unet.same_padding", o.same_padding ? "1" : "0"},
          {"unet.batch_norm", o.batch_norm ? "1" : "0"}};
}

UNetOptions unet_options_from(const std::map<std::string, std::string>& m, const std::string& file) {
  auto get = [&](const char* k) -> int64_t {
    auto it = m.find(k);
    TS_CHECK(it != m.end(), file, ": not a tessera U-Net file (no '", k, "' in its metadata)");
    try {
      return std::stoll(it->second);
    } catch (const std::exception&) {
      TS_ERROR(file, ": metadata '", k, "' is not a number: '", it->second, "'");
    }
  };
  UNetOptions o;
  o.in_channels = get("unet.in_channels");
  o.num_classes = get("unet.num_classes");
  o.width = get("unet.width");
  o.depth = get("unet.depth");
  o.same_padding = get("unet.same_padding") != 0;
  o.batch_norm = get("unet.batch_norm") != 0;
  return o;
}

}  // namespace tessera::driver
