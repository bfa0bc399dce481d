// Peer fixtures: tensors that PyTorch 1.13 / torchvision 0.14 computed (scripts/make_fixtures.py,
// tests/data/torch/<op>/meta.json records the versions and each configuration's arguments).
// Forward outputs and input gradients must match within 1e-5 (1e-4 for convolutions), NMS indices
// exactly.
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_helpers.h"

namespace tessera {
namespace {

using json = nlohmann::json;

struct Fixture {
  std::string op;
  json meta;
  std::string dir() const { return test::data_path("torch/" + op); }
  Tensor get(const json& config, const std::string& name) const {
    return load_npy(dir() + "/" + config["name"].get<std::string>() + "/" + name + ".npy");
  }
};

Fixture fixture(const std::string& op) {
  Fixture f{op, {}};
  std::ifstream in(f.dir() + "/meta.json");
  EXPECT_TRUE(in.good()) << "missing " << f.dir() << "/meta.json (run scripts/make_fixtures.py)";
  if (in.good()) f.meta = json::parse(in);
  return f;
}

Int2 int2(const json& j) { return j.is_array() ? Int2{j[0].get<int64_t>(), j[1].get<int64_t>()} : Int2{j.get<int64_t>()}; }

// out.backward(grad_out) from fresh leaves; returns the leaves' gradients.
std::vector<Tensor> grads_of(const Tensor& out, const Tensor& grad_out, const std::vector<Tensor>& leaves) {
  out.backward(grad_out);
  std::vector<Tensor> g;
  for (const Tensor& l : leaves) g.push_back(l.grad());
  return g;
}

#define EXPECT_CLOSE(actual, expected, tol) \
  EXPECT_TRUE(test::close(actual, expected, tol, tol)) << f.op << "/" << c["name"].get<std::string>() << ": " << #actual

TEST(TorchFixtures, Conv2d) {
  Fixture f = fixture("conv2d");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const json& a = c["args"];
    Tensor x = f.get(c, "x").requires_grad_(), w = f.get(c, "w").requires_grad_(), b = f.get(c, "b").requires_grad_();
    Tensor out = conv2d(x, w, b, int2(a["stride"]), int2(a["padding"]), int2(a["dilation"]), a["groups"].get<int64_t>());
    EXPECT_CLOSE(out, f.get(c, "out"), 1e-4);
    auto g = grads_of(out, f.get(c, "grad_out"), {x, w, b});
    EXPECT_CLOSE(g[0], f.get(c, "grad_x"), 1e-4);
    EXPECT_CLOSE(g[1], f.get(c, "grad_w"), 1e-4);
    EXPECT_CLOSE(g[2], f.get(c, "grad_b"), 1e-4);
  }
}

TEST(TorchFixtures, ConvTranspose2d) {
  Fixture f = fixture("conv_transpose2d");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const json& a = c["args"];
    Tensor x = f.get(c, "x").requires_grad_(), w = f.get(c, "w").requires_grad_(), b = f.get(c, "b").requires_grad_();
    Tensor out = conv_transpose2d(x, w, b, int2(a["stride"]), int2(a["padding"]), int2(a["output_padding"]),
                                  a["groups"].get<int64_t>(), int2(a["dilation"]));
    EXPECT_CLOSE(out, f.get(c, "out"), 1e-4);
    auto g = grads_of(out, f.get(c, "grad_out"), {x, w, b});
    EXPECT_CLOSE(g[0], f.get(c, "grad_x"), 1e-4);
    EXPECT_CLOSE(g[1], f.get(c, "grad_w"), 1e-4);
    EXPECT_CLOSE(g[2], f.get(c, "grad_b"), 1e-4);
  }
}

TEST(TorchFixtures, MaxPool2d) {
  Fixture f = fixture("max_pool2d");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const json& a = c["args"];
    Tensor x = f.get(c, "x").requires_grad_();
    auto [out, idx] = max_pool2d_with_indices(x, int2(a["kernel"]), int2(a["stride"]), int2(a["padding"]),
                                              int2(a["dilation"]), a["ceil_mode"].get<bool>());
    EXPECT_CLOSE(out, f.get(c, "out"), 1e-5);
    EXPECT_TRUE(test::equal(idx, f.get(c, "indices"))) << c["name"];
    EXPECT_CLOSE(grads_of(out, f.get(c, "grad_out"), {x})[0], f.get(c, "grad_x"), 1e-5);
  }
}

TEST(TorchFixtures, BatchNorm) {
  Fixture f = fixture("batch_norm");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const json& a = c["args"];
    Tensor x = f.get(c, "x").requires_grad_(), w = f.get(c, "w").requires_grad_(), b = f.get(c, "b").requires_grad_();
    Tensor rm = f.get(c, "running_mean"), rv = f.get(c, "running_var");
    Tensor out = batch_norm(x, rm, rv, w, b, a["training"].get<bool>(), a["momentum"].get<double>(), a["eps"].get<double>());
    EXPECT_CLOSE(out, f.get(c, "out"), 1e-5);
    EXPECT_CLOSE(rm, f.get(c, "running_mean_after"), 1e-5);
    EXPECT_CLOSE(rv, f.get(c, "running_var_after"), 1e-5);
    auto g = grads_of(out, f.get(c, "grad_out"), {x, w, b});
    EXPECT_CLOSE(g[0], f.get(c, "grad_x"), 1e-5);
    EXPECT_CLOSE(g[1], f.get(c, "grad_w"), 1e-5);
    EXPECT_CLOSE(g[2], f.get(c, "grad_b"), 1e-5);
  }
}

TEST(TorchFixtures, Interpolate) {
  Fixture f = fixture("interpolate");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const json& a = c["args"];
    Tensor x = f.get(c, "x").requires_grad_();
    std::optional<Int2> size;
    std::optional<Scale2> scale;
    if (a.contains("size")) size = int2(a["size"]);
    if (a.contains("scale_factor")) scale = Scale2{a["scale_factor"][0].get<double>(), a["scale_factor"][1].get<double>()};
    std::optional<bool> align;
    if (!a["align_corners"].is_null()) align = a["align_corners"].get<bool>();
    Tensor out = interpolate(x, size, scale, a["mode"].get<std::string>(), align);
    EXPECT_CLOSE(out, f.get(c, "out"), 1e-5);
    EXPECT_CLOSE(grads_of(out, f.get(c, "grad_out"), {x})[0], f.get(c, "grad_x"), 1e-5);
  }
}

TEST(TorchFixtures, Pad) {
  Fixture f = fixture("pad");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const json& a = c["args"];
    Tensor x = f.get(c, "x").requires_grad_();
    Tensor out = pad(x, a["pads"].get<std::vector<int64_t>>(), a["mode"].get<std::string>(), a["value"].get<double>());
    EXPECT_CLOSE(out, f.get(c, "out"), 1e-6);
    EXPECT_CLOSE(grads_of(out, f.get(c, "grad_out"), {x})[0], f.get(c, "grad_x"), 1e-5);
  }
}

TEST(TorchFixtures, RoiAlign) {
  Fixture f = fixture("roi_align");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const json& a = c["args"];
    Tensor input = f.get(c, "input").requires_grad_();
    Tensor out = roi_align(input, f.get(c, "rois"), int2(a["output_size"]), a["spatial_scale"].get<double>(),
                           a["sampling_ratio"].get<int64_t>(), a["aligned"].get<bool>());
    EXPECT_CLOSE(out, f.get(c, "out"), 1e-5);
    EXPECT_CLOSE(grads_of(out, f.get(c, "grad_out"), {input})[0], f.get(c, "grad_input"), 1e-5);
  }
}

TEST(TorchFixtures, MultiScaleRoiAlign) {
  Fixture f = fixture("multi_scale_roi_align");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const json& a = c["args"];
    std::vector<Tensor> fs = {f.get(c, "f0").requires_grad_(), f.get(c, "f1").requires_grad_(), f.get(c, "f2").requires_grad_()};
    const Int2 image = int2(a["image_size"]);
    const std::vector<double> scales = infer_roi_scales(fs, image);
    EXPECT_EQ(scales, a["scales"].get<std::vector<double>>());
    Tensor out = multi_scale_roi_align(fs, f.get(c, "rois"), scales, int2(a["output_size"]), a["sampling_ratio"].get<int64_t>(),
                                       a["canonical_scale"].get<double>(), a["canonical_level"].get<int64_t>());
    EXPECT_CLOSE(out, f.get(c, "out"), 1e-5);
    auto g = grads_of(out, f.get(c, "grad_out"), fs);
    for (int l = 0; l < 3; ++l) EXPECT_CLOSE(g[l], f.get(c, "grad_f" + std::to_string(l)), 1e-5);
  }
}

TEST(TorchFixtures, Nms) {
  Fixture f = fixture("nms");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const double thr = c["args"]["iou_threshold"].get<double>();
    Tensor keep = c["args"].contains("batched")
                      ? batched_nms(f.get(c, "boxes"), f.get(c, "scores"), f.get(c, "idxs"), thr)
                      : nms(f.get(c, "boxes"), f.get(c, "scores"), thr);
    EXPECT_EQ(keep.to_vector<int64_t>(), f.get(c, "keep").to_vector<int64_t>()) << c["name"];
  }
}

TEST(TorchFixtures, BoxesAndBoxCoder) {
  Fixture f = fixture("boxes");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const std::vector<double> w = c["args"]["weights"].get<std::vector<double>>();
    BoxCoder coder({w[0], w[1], w[2], w[3]});
    Tensor a = f.get(c, "a"), b = f.get(c, "b");
    EXPECT_CLOSE(box_iou(a, b), f.get(c, "iou"), 1e-5);
    EXPECT_CLOSE(coder.encode(b.narrow(0, 0, 30), a.narrow(0, 0, 30)), f.get(c, "encoded"), 1e-5);
    EXPECT_CLOSE(coder.decode(f.get(c, "codes"), a), f.get(c, "decoded"), 1e-5);
  }
}

TEST(TorchFixtures, Losses) {
  Fixture f = fixture("losses");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const std::string name = c["name"];
    const json& a = c["args"];
    Tensor x = f.get(c, "x").requires_grad_();
    Tensor loss;
    if (name.rfind("cross_entropy", 0) == 0) {
      Tensor w = name == "cross_entropy_weight_ignore" ? f.get(c, "weight") : Tensor();
      loss = cross_entropy(x, f.get(c, "target"), w, a["ignore_index"].get<int64_t>(), a["reduction"].get<std::string>());
    } else if (name == "bce_with_logits") {
      loss = binary_cross_entropy_with_logits(x, f.get(c, "y"), f.get(c, "weight"), f.get(c, "pos_weight"));
    } else if (name == "smooth_l1") {
      loss = smooth_l1_loss(x, f.get(c, "y"), a["beta"].get<double>(), a["reduction"].get<std::string>());
    } else {
      loss = l1_loss(x, f.get(c, "y"), a["reduction"].get<std::string>());
    }
    EXPECT_CLOSE(loss, f.get(c, "loss"), 1e-5);
    loss.backward();
    EXPECT_CLOSE(x.grad(), f.get(c, "grad_x"), 1e-5);
  }
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// torchvision's paste_masks_in_image on boxes narrower than 2 px, across the image border, outside
// it, and with the enlarged edge within 1e-3 px of an integer (where the int64 truncation decides
// the pasted width): the probabilities within 1e-6, the pixels above 0.5 exactly.
TEST(TorchFixtures, PasteMasksThinAndBorderBoxes) {
  Fixture f = fixture("paste_masks");
  ASSERT_FALSE(f.meta.is_null());
  for (const json& c : f.meta["configs"]) {
    const Int2 image = int2(c["args"]["image"]);
    const Tensor want = f.get(c, "pasted");
    const Tensor got = paste_masks_in_image(f.get(c, "masks"), f.get(c, "boxes"), image);
    ASSERT_EQ(got.shape(), want.shape());
    EXPECT_CLOSE(got, want, 1e-6);
    const std::vector<float> g = got.to_vector<float>(), w = want.to_vector<float>();
    const int64_t D = got.size(0), hw = image.h * image.w;
    for (int64_t d = 0; d < D; ++d) {
      int64_t ours = 0, theirs = 0;
      for (int64_t i = d * hw; i < (d + 1) * hw; ++i) {
        ours += g[static_cast<size_t>(i)] > 0.5f;
        theirs += w[static_cast<size_t>(i)] > 0.5f;
      }
      EXPECT_EQ(ours, theirs) << c["name"].get<std::string>() << " mask " << d;
    }
  }
}

}  // namespace
}  // namespace tessera
