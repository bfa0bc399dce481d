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

// Images with a parallel folder of label images of the same stem: images/x.png <-> masks/x.png
// (PNG, BMP, TIFF). instance_masks: the masks hold instance ids (CTC's man_seg, the Data Science
// Bowl's masks) and become the two classes with separated instances (separate_instances), the
// ids kept in Sample::instances; otherwise they are semantic labels.
class ImageMaskFolder : public Dataset {
 public:
  ImageMaskFolder(const std::string& images_dir, const std::string& masks_dir, int channels = 1, bool instance_masks = false);
  int64_t size() const override { return static_cast<int64_t>(images_.size()); }
  Sample get(int64_t index) const override;
  std::string describe(int64_t index) const override;

 private:
  std::vector<std::string> images_, masks_;
  int channels_;
  bool instance_masks_;
};

// Instance ids [H, W] (0 = background) with a background line between touching instances: a
// pixel of an instance that has a pixel of a larger id among its 8 neighbours becomes 0, so no
// two instances touch, even diagonally (the paper's separating background between touching
// cells, drawn from the ids instead of by hand).
Tensor separate_instances(const Tensor& instances);
// A sample from instance ids: mask = 1 on the separated instances, instances = the separated ids.
void set_instances(Sample& s, const Tensor& instances);

// The ISBI 2012 layout: a stack of images (train-volume.tif: 30 slices of 512 x 512) and a stack
// of labels (train-labels.tif: 0 = membrane, 255 = cell), each slice a sample with mask 1 on the
// cells. The stacks must agree in slices and size.
class IsbiStack : public Dataset {
 public:
  IsbiStack(const std::string& volume, const std::string& labels, int channels = 1);
  int64_t size() const override { return images_.size(0); }
  Sample get(int64_t index) const override;
  std::string describe(int64_t index) const override;

 private:
  std::string volume_, labels_path_;
  Tensor images_, labels_;  // [N, C, H, W], [N, H, W]
};

// A Cell Tracking Challenge sequence: <dir>/tTTT.tif frames, and the annotated ones in
// <dir>_GT/SEG/man_segTTT.tif (gold truth; <dir>_ST/SEG with silver = true): instance ids, only
// annotated frames are samples. dir is e.g. PhC-C2DH-U373/01.
class CtcSequence : public Dataset {
 public:
  explicit CtcSequence(const std::string& dir, bool silver = false, int channels = 1);
  int64_t size() const override { return static_cast<int64_t>(frames_.size()); }
  Sample get(int64_t index) const override;
  std::string describe(int64_t index) const override;
  // Whether dir looks like a CTC sequence (tTTT.tif files and a <dir>_GT or <dir>_ST folder).
  static bool looks_like(const std::string& dir);

 private:
  std::vector<std::string> frames_, masks_;
  int channels_;
};

// The frame number in a file name: its first run of digits ("man_seg012.tif" -> 12,
// "t012_instances.tif" -> 12); -1 when there is none.
int64_t frame_number(const std::string& file_name);

}  // namespace tessera
