// ImageMaskFolder: pairs images and label masks by file stem. Subset: a range of another dataset.
#include <algorithm>
#include <filesystem>
#include <map>

#include "data/dataset.h"
#include "data/image.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {
bool is_image(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".tif" || e == ".tiff";
}
}  // namespace

Subset::Subset(std::shared_ptr<const Dataset> base, int64_t begin, int64_t end) : base_(std::move(base)), begin_(begin), end_(end) {
  TS_CHECK(base_ != nullptr, "Subset: no dataset");
  TS_CHECK(0 <= begin && begin <= end && end <= base_->size(), "Subset: the range [", begin, ", ", end,
           ") is not inside a dataset of ", base_->size(), " samples");
}

int64_t Subset::check(int64_t index) const {
  TS_CHECK(index >= 0 && index < size(), "Subset: index ", index, " is out of range for ", size(), " samples");
  return begin_ + index;
}

Sample Subset::get(int64_t index) const { return base_->get(check(index)); }
std::string Subset::describe(int64_t index) const { return base_->describe(check(index)); }

ImageMaskFolder::ImageMaskFolder(const std::string& images_dir, const std::string& masks_dir, int channels, bool instance_masks)
    : channels_(channels), instance_masks_(instance_masks) {
  TS_CHECK(fs::is_directory(images_dir), "ImageMaskFolder: '", images_dir, "' is not a directory");
  TS_CHECK(fs::is_directory(masks_dir), "ImageMaskFolder: '", masks_dir, "' is not a directory");
  std::map<std::string, std::string> masks;
  for (const auto& e : fs::directory_iterator(masks_dir))
    if (e.is_regular_file() && is_image(e.path())) masks[e.path().stem().string()] = e.path().string();
  std::vector<fs::path> images;
  for (const auto& e : fs::directory_iterator(images_dir))
    if (e.is_regular_file() && is_image(e.path())) images.push_back(e.path());
  std::sort(images.begin(), images.end());
  for (const auto& p : images) {
    auto it = masks.find(p.stem().string());
    TS_CHECK(it != masks.end(), "ImageMaskFolder: no mask for image '", p.string(), "' in '", masks_dir, "'");
    images_.push_back(p.string());
    masks_.push_back(it->second);
  }
  TS_CHECK(!images_.empty(), "ImageMaskFolder: no images (.png, .jpg, .bmp, .tif) in '", images_dir, "'");
}

std::string ImageMaskFolder::describe(int64_t index) const {
  const size_t i = static_cast<size_t>(index);
  return "sample " + std::to_string(index) + " ('" + images_.at(i) + "', mask '" + masks_.at(i) + "')";
}

Sample ImageMaskFolder::get(int64_t index) const {
  TS_CHECK(index >= 0 && index < size(), "ImageMaskFolder: index ", index, " out of range [0, ", size(), ")");
  Sample s;
  s.image = read_image(images_[index], channels_);
  s.mask = read_label_image(masks_[index]);
  s.name = images_[index];
  if (instance_masks_) set_instances(s, s.mask);
  TS_CHECK(s.mask.size(0) == s.image.size(1) && s.mask.size(1) == s.image.size(2), "ImageMaskFolder: mask '",
           masks_[index], "' is ", s.mask.size(0), "x", s.mask.size(1), " but image '", images_[index], "' is ",
           s.image.size(1), "x", s.image.size(2));
  return s;
}

}  // namespace tessera
