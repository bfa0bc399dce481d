// Samples and datasets. A Sample carries whatever a dataset knows about one image; the fields a
// dataset does not fill stay undefined.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera {

struct Sample {
  Tensor image;      // float32 [C, H, W] in [0, 1]
  Tensor mask;       // int64 [H, W] semantic labels (segmentation)
  Tensor instances;  // int64 [H, W] instance ids, 0 = none (cells)
  Tensor weight;     // float32 [H, W] per-pixel loss weights (U-Net)
  Tensor boxes;      // float32 [K, 4] (x1, y1, x2, y2) (detection)
  Tensor labels;     // int64 [K], 1..num_classes
  Tensor masks;      // uint8 [K, H, W]
  Tensor iscrowd;    // int64 [K]
  int64_t image_id = -1;
  std::string name;  // the source (file name or "synthetic #i") for messages
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // The sample at index (0 <= index < size()); an Error naming the index and file when it is bad.
  virtual Sample get(int64_t index) const = 0;
  virtual std::string describe(int64_t index) const { return "sample " + std::to_string(index); }
};

// The samples begin..end-1 of another dataset, renumbered from 0 (a train/held-out split of a
// folder or a COCO file); an Error when the range is not inside the dataset.
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> base, int64_t begin, int64_t end);
  int64_t size() const override { return end_ - begin_; }
  Sample get(int64_t index) const override;
  std::string describe(int64_t index) const override;

 private:
  int64_t check(int64_t index) const;
  std::shared_ptr<const Dataset> base_;
  int64_t begin_, end_;
};

// Images with a parallel folder of label PNGs of the same stem: images/x.png <-> masks/x.png.
class ImageMaskFolder : public Dataset {
 public:
  ImageMaskFolder(const std::string& images_dir, const std::string& masks_dir, int channels = 1);
  int64_t size() const override { return static_cast<int64_t>(images_.size()); }
  Sample get(int64_t index) const override;
  std::string describe(int64_t index) const override;

 private:
  std::vector<std::string> images_, masks_;
  int channels_;
};

}  // namespace tessera
