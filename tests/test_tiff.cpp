// TIFF: tifffile-written files (scripts/make_tiff_fixtures.py) decode to exactly tifffile's values,
// scaled by the type's range; labels keep their 16-bit ids; written TIFFs read back; malformed
// files are refused with an Error naming the file.
#include <cmath>
#include <filesystem>

#include "core/file_io.h"
#include "core/npy.h"
#include "data/image.h"
#include "data/tiff.h"
#include "test_helpers.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

std::string tif(const std::string& name) { return test::data_path("tiff/" + name); }

std::string scratch(const std::string& name) { return (test::scratch_dir("tiff") / name).string(); }

struct Expected {
  int64_t n, h, w, s;
  std::vector<double> v;  // [n][h][w][s]
  double at(int64_t p, int64_t y, int64_t x, int64_t c) const { return v[((p * h + y) * w + x) * s + c]; }
};

Expected expected(const std::string& name) {
  Tensor e = load_npy(tif(name + ".npy"));
  Expected r{e.size(0), e.size(1), e.size(2), e.size(3), e.to_vector<double>()};
  return r;
}

struct Case {
  const char* name;
  double scale;  // the type's full range
};

TEST(Tiff, EveryDepthCompressionAndLayoutEqualsTifffile) {
  const Case cases[] = {{"gray8", 255},          {"gray8_packbits", 255},     {"gray16_lzw", 65535},
                        {"gray16_lzw_predictor", 65535}, {"gray16_deflate_tiled", 65535}, {"gray16_bigendian", 65535},
                        {"gray32", 4294967295.0}, {"float32_deflate", 1},     {"float32_tiled", 1},
                        {"float64", 1},           {"rgb8_lzw", 255},          {"rgb16_planar", 65535},
                        {"rgba8_tiled", 255},     {"stack8_deflate", 255},    {"stack_labels", 255},
                        {"labels16_lzw", 65535}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Expected e = expected(c.name);
    const Tensor t = read_image_stack(tif(std::string(c.name) + ".tif"));
    ASSERT_EQ(t.shape(), (Shape{e.n, e.s, e.h, e.w}));
    const std::vector<float> got = t.to_vector<float>();
    int64_t nonzero = 0;
    for (int64_t p = 0; p < e.n; ++p)
      for (int64_t k = 0; k < e.s; ++k)
        for (int64_t y = 0; y < e.h; ++y)
          for (int64_t x = 0; x < e.w; ++x) {
            const double want = static_cast<double>(static_cast<float>(e.at(p, y, x, k) / c.scale));
            const float g = got[static_cast<size_t>(((p * e.s + k) * e.h + y) * e.w + x)];
            nonzero += e.at(p, y, x, k) != 0;
            ASSERT_EQ(g, want) << "page " << p << " channel " << k << " at (" << y << ", " << x << ")";
          }
    EXPECT_GT(nonzero, e.n * e.h * e.w * e.s / 2) << "a fixture of zeros would test nothing";
    if (e.n == 1) {
      EXPECT_EQ(read_image(tif(std::string(c.name) + ".tif")).shape(), (Shape{e.s, e.h, e.w}));
    }
  }
}

TEST(Tiff, LabelsKeepTheirIds) {
  const Expected e = expected("labels16_lzw");
  const Tensor l = read_label_image(tif("labels16_lzw.tif"));
  ASSERT_EQ(l.shape(), (Shape{e.h, e.w}));
  const std::vector<int64_t> got = l.to_vector<int64_t>();
  int64_t above_255 = 0;
  for (int64_t i = 0; i < e.h * e.w; ++i) {
    ASSERT_EQ(got[i], static_cast<int64_t>(e.v[i]));
    above_255 += got[i] > 255;
  }
  EXPECT_GT(above_255, 0);
  EXPECT_EQ(got[0], 65535);
  const Tensor stack = read_label_stack(tif("stack_labels.tif"));
  EXPECT_EQ(stack.shape(), (Shape{3, 24, 20}));
  const Expected es = expected("stack_labels");
  EXPECT_EQ(stack.to_vector<int64_t>()[24 * 20 + 7], static_cast<int64_t>(es.v[24 * 20 + 7]));
  // A float TIFF is not a label image; a stack is not one image.
  test::expect_error([] { read_label_image(tif("float32_deflate.tif")); }, {"float32_deflate.tif", "labels"});
  test::expect_error([] { read_image(tif("stack8_deflate.tif")); }, {"stack8_deflate.tif", "5 pages"});
}

TEST(Tiff, ChannelConversionsAreStbs) {
  const Expected e = expected("rgb8_lzw");
  const std::vector<float> gray = read_image(tif("rgb8_lzw.tif"), 1).to_vector<float>();
  for (int64_t y = 0; y < e.h; ++y)
    for (int64_t x = 0; x < e.w; ++x) {
      const int64_t want = (77 * static_cast<int64_t>(e.at(0, y, x, 0)) + 150 * static_cast<int64_t>(e.at(0, y, x, 1)) +
                            29 * static_cast<int64_t>(e.at(0, y, x, 2))) >> 8;
      ASSERT_EQ(gray[y * e.w + x], static_cast<float>(want / 255.0));
    }
  // The same conversion as PNG: an RGB TIFF and the RGB PNG of its pixels give the same gray.
  const Tensor rgb = read_image(tif("rgb8_lzw.tif"));
  const std::string png = scratch("rgb.png");
  write_png(png, rgb);
  EXPECT_TRUE(test::equal(read_image(png, 1), read_image(tif("rgb8_lzw.tif"), 1)));
  const Tensor g4 = read_image(tif("gray8.tif"), 4);
  ASSERT_EQ(g4.size(0), 4);
  EXPECT_TRUE(test::equal(g4.select(0, 2), g4.select(0, 0)));
  EXPECT_EQ(amin(g4.select(0, 3)).item<float>(), 1.0f);
  EXPECT_EQ(read_image(tif("rgba8_tiled.tif"), 3).size(0), 3);
}

TEST(Tiff, WrittenPagesReadBack) {
  Tensor prob = rand({3, 17, 23});
  prob = sub(mul(prob, 1.5), 0.25);  // outside [0, 1] too: floats are stored as they are
  const std::string p = scratch("prob.tif");
  write_tiff(p, prob);
  const Tensor back = read_image_stack(p);
  ASSERT_EQ(back.shape(), (Shape{3, 1, 17, 23}));
  EXPECT_TRUE(test::equal(back.squeeze(1), prob));
  Tensor ids = randint(0, 65536, {19, 31});
  write_tiff(scratch("ids.tif"), ids);
  EXPECT_TRUE(test::equal(read_label_image(scratch("ids.tif")), ids));
  Tensor bytes = randint(0, 256, {2, 5, 7}).to(kUInt8);
  write_tiff(scratch("u8.tif"), bytes);
  EXPECT_TRUE(test::equal(read_label_stack(scratch("u8.tif")), bytes.to(kInt64)));
  test::expect_error([&] { write_tiff(scratch("x.tif"), full({4, 4}, 70000, kInt64)); }, {"70000", "16 bits"});
  test::expect_error([&] { write_tiff(scratch("x.tif"), rand({2, 2, 3, 3})); }, {"[H, W] or [N, H, W]"});
}

TEST(Tiff, MalformedFilesAreErrorsNamingTheFile) {
  struct Bad {
    const char* file;
    std::vector<std::string> words;
  };
  const Bad bad[] = {{"bad_truncated.tif", {"bad_truncated.tif"}},
                     {"bad_header.tif", {"bad_header.tif"}},
                     {"bad_huge.tif", {"bad_huge.tif", "60000"}},
                     {"bad_signed16.tif", {"bad_signed16.tif", "signed"}},
                     {"bad_jpeg.tif", {"bad_jpeg.tif", "JPEG compression"}},
                     {"bad_mixed_pages.tif", {"bad_mixed_pages.tif", "page 1", "must agree"}}};
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.file);
    test::expect_error([&] { read_image_stack(tif(b.file)); }, b.words);
    test::expect_error([&] { read_label_stack(tif(b.file)); }, {b.file});
  }
  // Every prefix of a good file is refused cleanly or (when the cut leaves the data whole) decoded.
  const std::vector<char> good = read_file(tif("gray16_deflate_tiled.tif"));
  for (size_t n = 0; n < good.size(); n += 7) {
    try {
      (void)decode_tiff(good.data(), n, "prefix");
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("prefix"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace tessera
