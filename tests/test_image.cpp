// Image I/O: Pillow-written files decode to the right values; PNG round trips; malformed files fail
// with the file's name and the reason.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/npy.h"
#include "data/image.h"
#include "test_helpers.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

std::string img(const std::string& name) { return test::data_path("images/" + name); }

std::string scratch(const std::string& name) { return (test::scratch_dir("img") / name).string(); }

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

double expected8(int64_t y, int64_t x, int64_t c) { return static_cast<double>((7 * y + 13 * x + 50 * c) % 256) / 255.0; }

void expect_pattern(const Tensor& t, int64_t channels) {
  ASSERT_EQ(t.shape(), (Shape{channels, 6, 9}));
  test::Host h = test::host(t);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = 0; y < 6; ++y)
      for (int64_t x = 0; x < 9; ++x) ASSERT_NEAR(h.at({c, y, x}), expected8(y, x, c), 1e-7) << c << "," << y << "," << x;
}

TEST(Image, PillowFilesDecodeToTheirValues) {
  expect_pattern(read_image(img("rgb8.png")), 3);
  expect_pattern(read_image(img("gray8.png")), 1);
  expect_pattern(read_image(img("gray_alpha8.png")), 2);
  expect_pattern(read_image(img("rgba8.png")), 4);
  expect_pattern(read_image(img("rgb.bmp")), 3);
  Tensor g16 = read_image(img("gray16.png"));
  ASSERT_EQ(g16.shape(), (Shape{1, 6, 9}));
  test::Host h = test::host(g16);
  for (int64_t y = 0; y < 6; ++y)
    for (int64_t x = 0; x < 9; ++x) EXPECT_NEAR(h.at({0, y, x}), ((7 * y + 13 * x) * 257 % 65536) / 65535.0, 1e-7);
  Tensor jpg = read_image(img("smooth.jpg"));
  test::Host hj = test::host(jpg);
  for (int64_t y = 0; y < 6; ++y)
    for (int64_t x = 0; x < 9; ++x) EXPECT_NEAR(hj.at({1, y, x}), (y * 20 + x * 10) / 255.0, 3.0 / 255.0);
  // Channel conversion on request.
  EXPECT_EQ(read_image(img("rgb8.png"), 1).shape(), (Shape{1, 6, 9}));
  EXPECT_EQ(read_image(img("gray8.png"), 3).shape(), (Shape{3, 6, 9}));
  Tensor labels = read_label_image(img("labels8.png"));
  ASSERT_EQ(labels.shape(), (Shape{6, 9}));
  EXPECT_EQ(labels.to_vector<int64_t>()[9 * 5 + 8], 8);
  EXPECT_EQ(amax(labels).item<int64_t>(), 8);
}

// The large masks of scripts/make_image_fixtures.py: 512-pixel squares, 1 where (x/512 + y/512) is odd.
int64_t checker(int64_t y, int64_t x) { return (x / 512 + y / 512) % 2; }

TEST(Image, LowBitDepthAndPaletteFilesDecodeAndLabelsAreTheirIndices) {
  // A 1-bit 4096 x 4096 mask is ~10 KB: 1700 pixels per file byte, which a bound of stored bytes
  // per file byte (1100) refused; the bound now follows from deflate's densest coding.
  Tensor mask = read_image(img("mask1bit_4096.png"));
  ASSERT_EQ(mask.shape(), (Shape{1, 4096, 4096}));
  Tensor labels = read_label_image(img("mask1bit_4096.png"));  // 0 and 1, as stored (not stb's 0 and 255)
  ASSERT_EQ(labels.shape(), (Shape{4096, 4096}));
  const float* m = mask.data<float>();
  const int64_t* l = labels.data<int64_t>();
  int64_t wrong = 0;
  for (int64_t y = 0; y < 4096; ++y)
    for (int64_t x = 0; x < 4096; ++x) {
      const int64_t want = checker(y, x);
      wrong += (l[y * 4096 + x] != want) + (m[y * 4096 + x] != static_cast<float>(want));
    }
  EXPECT_EQ(wrong, 0);
  // A 1-bit palette image: colours for read_image, indices for read_label_image.
  Tensor colours = read_image(img("palette1bit_4096.png"));
  ASSERT_EQ(colours.shape(), (Shape{3, 4096, 4096}));
  test::Host c = test::host(colours.narrow(1, 0, 1).narrow(2, 0, 1024));
  const float second[3] = {1.0f, 128 / 255.0f, 0.0f};  // palette entry 1: (255, 128, 0)
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_FLOAT_EQ(c.at({k, 0, 0}), 0.0f);
    EXPECT_FLOAT_EQ(c.at({k, 0, 600}), second[k]);
  }
  Tensor indices = read_label_image(img("palette1bit_4096.png"));
  const int64_t* ix = indices.data<int64_t>();
  wrong = 0;
  for (int64_t y = 0; y < 4096; y += 7)
    for (int64_t x = 0; x < 4096; x += 5) wrong += ix[y * 4096 + x] != checker(y, x);
  EXPECT_EQ(wrong, 0);
  // A PASCAL VOC-style mask: palette indices 0..8 and 255 ("void"), each a colour of its own.
  Tensor voc = read_label_image(img("labels_palette.png"));
  ASSERT_EQ(voc.shape(), (Shape{6, 9}));
  const std::vector<int64_t> v = voc.to_vector<int64_t>();
  for (int64_t y = 0; y < 6; ++y)
    for (int64_t x = 0; x < 9; ++x) EXPECT_EQ(v[static_cast<size_t>(y * 9 + x)], y + x == 0 ? 255 : x / 3 + 3 * (y / 2)) << y << "," << x;
  test::Host vc = test::host(read_image(img("labels_palette.png")));
  EXPECT_NEAR(vc.at({0, 0, 3}), 37 / 255.0, 1e-7);  // index 1's colour (37, 91, 151)
  EXPECT_NEAR(vc.at({2, 0, 3}), 151 / 255.0, 1e-7);
  EXPECT_NEAR(vc.at({1, 0, 0}), 224 / 255.0, 1e-7);  // 255's (224, 224, 192)
}

// JPEGs decode to torchvision's decode_jpeg pixels exactly, RGB and GRAY (scripts/make_jpeg_fixtures.py;
// Pillow agrees with both; CMYK: Pillow's conversion, which newer torchvision follows). stb's own
// decoder missed 7% of these values by up to 3 levels.
TEST(Image, JpegDecodesToTorchvisionsPixels) {
  for (const std::string stem : {"photo420", "photo444", "photo_progressive", "gray", "cmyk"}) {
    const std::string file = img("jpeg/" + stem + ".jpg");
    for (const auto& [channels, suffix] : {std::pair<int, const char*>{3, "rgb"}, {1, "gray"}}) {
      const Tensor want = load_npy(img("jpeg/" + stem + "_" + suffix + ".npy"));  // [H, W, C] uint8
      ASSERT_EQ(want.dim(), 3);
      const Tensor got = read_image(file, channels);
      ASSERT_EQ(got.shape(), (Shape{want.size(2), want.size(0), want.size(1)})) << stem;
      const uint8_t* w = want.data<uint8_t>();
      const float* g = got.data<float>();
      const int64_t H = want.size(0), W = want.size(1), C = want.size(2);
      int64_t differ = 0;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < H * W; ++i) differ += g[c * H * W + i] * 255.0f != static_cast<float>(w[i * C + c]);
      EXPECT_EQ(differ, 0) << stem << " " << suffix << ": of " << H * W * C << " values";
    }
  }
  EXPECT_EQ(read_image(img("jpeg/gray.jpg")).size(0), 1);  // the file's own channels
  EXPECT_EQ(read_image(img("jpeg/cmyk.jpg")).size(0), 3);  // CMYK is read as RGB
  const Tensor rgba = read_image(img("jpeg/photo420.jpg"), 4);
  ASSERT_EQ(rgba.size(0), 4);
  EXPECT_TRUE(test::equal(rgba.narrow(0, 0, 3), read_image(img("jpeg/photo420.jpg"), 3)));
  EXPECT_EQ(amin(rgba.select(0, 3)).item<float>(), 1.0f);  // opaque
}

TEST(Image, PngRoundTrip) {
  Tensor u8 = randint(0, 256, {3, 5, 7}, kInt64).to(kUInt8);
  write_png(scratch("u8.png"), u8);
  EXPECT_TRUE(test::close(read_image(scratch("u8.png")), div(u8.to(kFloat32), 255.0), 1e-7, 0));
  Tensor f = rand({1, 4, 4});
  write_png(scratch("f.png"), f);
  EXPECT_TRUE(test::close(read_image(scratch("f.png")), f, 0.5 / 255.0 + 1e-7, 0));  // quantised to 8 bits
  write_png(scratch("hw.png"), zeros({4, 5}, kUInt8));
  EXPECT_EQ(read_image(scratch("hw.png")).shape(), (Shape{1, 4, 5}));
  EXPECT_THROW(write_png(scratch("x.png"), zeros({5, 4, 4})), Error);
  EXPECT_THROW(write_png(scratch("x.png"), zeros({3, 4, 4}, kInt64)), Error);
  EXPECT_THROW(write_png(scratch("no_dir/x.png"), zeros({4, 4}, kUInt8)), Error);
}

void expect_error(const std::string& path, const std::string& what) {
  try {
    read_image(path);
    ADD_FAILURE() << path << " should not decode";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(fs::path(path).filename().string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "expected '" << what << "' in " << msg;
  }
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
  std::ofstream(scratch(name), std::ios::binary) << bytes;
  return scratch(name);
}

TEST(Image, MalformedFilesNameTheFileAndTheProblem) {
  expect_error(img("rgb.gif"), "unsupported");
  expect_error(scratch("missing.png"), "cannot open");
  expect_error(write_bytes("empty.png", ""), "empty");
  const std::string png = bytes_of(img("rgb8.png")), jpg = bytes_of(img("smooth.jpg")), bmp = bytes_of(img("rgb.bmp"));
  expect_error(write_bytes("cut.png", png.substr(0, png.size() / 2)), "truncated PNG");
  expect_error(write_bytes("cut_header.png", png.substr(0, 20)), "truncated PNG");
  expect_error(write_bytes("cut.jpg", jpg.substr(0, jpg.size() * 2 / 3)), "truncated JPEG");
  expect_error(write_bytes("cut.bmp", bmp.substr(0, bmp.size() - 10)), "truncated BMP");
  std::string garbage = png.substr(0, 8) + std::string(200, '\x42');
  expect_error(write_bytes("garbage.png", garbage), "truncated PNG");  // a chunk of 0x42424242 bytes
  // Found by fuzz_image: a chunk length past the end made stb allocate 900 MB for a 76-byte file.
  std::string long_chunk = png;
  const size_t idat = long_chunk.find("IDAT") - 4;
  long_chunk.replace(idat, 4, std::string("\x37\x00\x00\x00", 4));
  expect_error(write_bytes("long_chunk.png", long_chunk), "claims 922746880 bytes");
  // Found by fuzz_image: a Huffman table of more than 256 codes made stb 2.27 write past its table.
  std::string many_codes = jpg;
  const size_t dht = many_codes.find("\xff\xc4");
  ASSERT_NE(dht, std::string::npos);
  many_codes[dht + 4 + 1 + 15] = static_cast<char>(200);  // the first table's count of 16-bit codes
  many_codes[dht + 4 + 1 + 14] = static_cast<char>(200);
  expect_error(write_bytes("many_codes.jpg", many_codes), "corrupt JPEG Huffman table");
  // A small file claiming a huge image (16000 x 16000 in the header): refused before decoding.
  std::string huge = png;
  huge.replace(16, 8, std::string("\x00\x00\x3e\x80\x00\x00\x3e\x80", 8));
  expect_error(write_bytes("huge.png", huge), "more than its data can hold");
  // The same for a 1-bit mask (16384 x 16384 from its 10 KB) and a JPEG (4000 x 4000 from 672 bytes).
  std::string huge_mask = bytes_of(img("mask1bit_4096.png"));
  huge_mask.replace(16, 8, std::string("\x00\x00\x40\x00\x00\x00\x40\x00", 8));
  expect_error(write_bytes("huge_mask.png", huge_mask), "more than its data can hold");
  std::string huge_jpg = jpg;
  const size_t sof = huge_jpg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  huge_jpg.replace(sof + 5, 4, std::string("\x0f\xa0\x0f\xa0", 4));  // height, width
  expect_error(write_bytes("huge.jpg", huge_jpg), "more than its data can hold");
  EXPECT_THROW(read_label_image(img("rgb8.png")), Error);     // three channels
  EXPECT_THROW(read_label_image(img("smooth.jpg")), Error);   // lossy
  EXPECT_THROW(read_image(img("rgb8.png"), 2), Error);
  // A PNG cut after its header says why (stb's reason is empty in Debian's build).
  try {
    read_image(write_bytes("cut2.png", png.substr(0, png.size() / 2)));
    ADD_FAILURE() << "a cut PNG decoded";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("cannot decode ()"), std::string::npos) << e.what();
  }
  // Label images get every check images get: empty, cut short, cut after the header.
  const std::string gray = bytes_of(img("gray8.png"));
  EXPECT_EQ(read_label_image(img("gray8.png")).dim(), 2);
  for (const std::string& bad : {std::string(), gray.substr(0, 20), gray.substr(0, gray.size() / 2)}) {
    try {
      read_label_image(write_bytes("bad_label.png", bad));
      ADD_FAILURE() << bad.size() << " bytes decoded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad_label.png"), std::string::npos) << e.what();
    }
  }
}

// libjpeg's errors come back as Errors through its longjmp, with nothing leaked (the sanitizer
// build checks): scan data cut short before a complete end-of-image marker (libjpeg would fill the
// rest with gray and only warn), and a scan naming a component the frame lacks (an error_exit).
// stb's header check passes both: the messages are libjpeg's.
TEST(Image, JpegDecoderErrorsAreErrors) {
  const std::string jpg = bytes_of(img("jpeg/photo420.jpg"));
  const size_t sos = jpg.find("\xff\xda");
  ASSERT_NE(sos, std::string::npos);
  expect_error(write_bytes("cut_scan.jpg", jpg.substr(0, sos + 300) + "\xff\xd9"), "premature end of data segment");
  std::string bad_scan = jpg;
  bad_scan[sos + 5] = 77;  // the scan's first component id: the frame has 1, 2 and 3
  expect_error(write_bytes("bad_scan.jpg", bad_scan), "Invalid component ID 77 in SOS");
}

}  // namespace
}  // namespace tessera
