// The U-Net paper's datasets as they are distributed: ISBI 2012's stacks and the Cell Tracking
// Challenge's sequences; instance masks made into the paper's two classes.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "autograd/ops.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/tiff.h"

namespace tessera {

namespace fs = std::filesystem;

Tensor separate_instances(const Tensor& instances) {
  TS_CHECK(instances.defined() && instances.dim() == 2, "separate_instances: expected [H, W] instance ids, got ",
           instances.defined() ? shape_str(instances.shape()) : "undefined");
  const Tensor in = instances.cpu().to(kInt64).contiguous();
  const int64_t H = in.size(0), W = in.size(1);
  const int64_t* v = in.data<int64_t>();
  Tensor out = in.clone();
  int64_t* o = out.data<int64_t>();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const int64_t id = v[y * W + x];
      TS_CHECK(id >= 0, "separate_instances: negative instance id ", id, " at (", y, ", ", x, ")");
      if (id == 0) continue;
      for (int64_t dy = -1; dy <= 1 && o[y * W + x]; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
          if (v[yy * W + xx] > id) {
            o[y * W + x] = 0;
            break;
          }
        }
    }
  return out;
}

void set_instances(Sample& s, const Tensor& instances) {
  s.instances = separate_instances(instances);
  s.mask = gt(s.instances, 0.0).to(kInt64);
}

int64_t frame_number(const std::string& file_name) {
  const std::string name = fs::path(file_name).filename().string();
  auto b = std::find_if(name.begin(), name.end(), [](unsigned char c) { return std::isdigit(c); });
  if (b == name.end()) return -1;
  auto e = std::find_if(b, name.end(), [](unsigned char c) { return !std::isdigit(c); });
  if (e - b > 12) return -1;
  return std::stoll(std::string(b, e));
}

IsbiStack::IsbiStack(const std::string& volume, const std::string& labels, int channels)
    : volume_(volume), labels_path_(labels) {
  images_ = read_image_stack(volume, channels);
  labels_ = read_label_stack(labels);
  TS_CHECK(images_.size(0) == labels_.size(0) && images_.size(2) == labels_.size(1) && images_.size(3) == labels_.size(2),
           "IsbiStack: the volume '", volume, "' is ", images_.size(0), " x ", images_.size(2), " x ", images_.size(3),
           " but the labels '", labels, "' are ", labels_.size(0), " x ", labels_.size(1), " x ", labels_.size(2));
}

Sample IsbiStack::get(int64_t index) const {
  TS_CHECK(index >= 0 && index < size(), "IsbiStack: slice ", index, " out of range [0, ", size(), ")");
  Sample s;
  s.image = images_.select(0, index).contiguous();
  s.mask = gt(labels_.select(0, index), 0.0).to(kInt64);  // 255 = cell -> 1, 0 = membrane
  s.name = volume_ + " [slice " + std::to_string(index) + "]";
  return s;
}

std::string IsbiStack::describe(int64_t index) const {
  return "slice " + std::to_string(index) + " of '" + volume_ + "' (labels '" + labels_path_ + "')";
}

namespace {
fs::path truth_dir(const fs::path& seq, bool silver) {
  fs::path d = seq.lexically_normal();
  if (!d.has_filename()) d = d.parent_path();
  return d.parent_path() / (d.filename().string() + (silver ? "_ST" : "_GT")) / "SEG";
}
bool is_tif(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".tif" || e == ".tiff";
}
}  // namespace

bool CtcSequence::looks_like(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  return fs::is_directory(truth_dir(dir, false), ec) || fs::is_directory(truth_dir(dir, true), ec);
}

CtcSequence::CtcSequence(const std::string& dir, bool silver, int channels) : channels_(channels) {
  TS_CHECK(fs::is_directory(dir), "CtcSequence: '", dir, "' is not a directory");
  const fs::path truth = truth_dir(dir, silver);
  TS_CHECK(fs::is_directory(truth), "CtcSequence: no ", silver ? "silver" : "gold", " segmentation truth at '", truth.string(),
           "' (a CTC sequence 01/ comes with 01_GT/SEG/man_segTTT.tif", silver ? "" : "; --silver takes 01_ST/SEG", ")");
  std::map<int64_t, std::string> frames;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_tif(e.path()) && e.path().filename().string()[0] == 't')
      frames[frame_number(e.path().string())] = e.path().string();
  std::vector<std::pair<int64_t, std::string>> masks;
  for (const auto& e : fs::directory_iterator(truth))
    if (e.is_regular_file() && is_tif(e.path()) && e.path().filename().string().rfind("man_seg", 0) == 0)
      masks.emplace_back(frame_number(e.path().string()), e.path().string());
  std::sort(masks.begin(), masks.end());
  for (const auto& [t, m] : masks) {
    auto it = frames.find(t);
    TS_CHECK(it != frames.end(), "CtcSequence: the annotation '", m, "' has no frame t", t, ".tif in '", dir, "'");
    frames_.push_back(it->second);
    masks_.push_back(m);
  }
  TS_CHECK(!frames_.empty(), "CtcSequence: no annotated frames (man_segTTT.tif) in '", truth.string(), "'");
}

Sample CtcSequence::get(int64_t index) const {
  TS_CHECK(index >= 0 && index < size(), "CtcSequence: index ", index, " out of range [0, ", size(), ")");
  Sample s;
  s.image = read_image(frames_[index], channels_);
  const Tensor ids = read_label_image(masks_[index]);
  TS_CHECK(ids.size(0) == s.image.size(1) && ids.size(1) == s.image.size(2), "CtcSequence: '", masks_[index], "' is ", ids.size(0),
           "x", ids.size(1), " but '", frames_[index], "' is ", s.image.size(1), "x", s.image.size(2));
  set_instances(s, ids);
  s.name = frames_[index];
  return s;
}

std::string CtcSequence::describe(int64_t index) const {
  const size_t i = static_cast<size_t>(index);
  return "frame '" + frames_.at(i) + "' (annotation '" + masks_.at(i) + "')";
}

}  // namespace tessera
