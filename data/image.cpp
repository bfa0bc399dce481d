// Image decoding and PNG writing through stb (Debian's libstb), with the checks stb leaves out:
// the format is identified by its magic bytes, and JPEG/BMP truncation (which stb decodes as
// zeros) is detected from the end-of-image marker and the BMP header's file size.
#include "data/image.h"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "autograd/ops.h"
#include "core/file_io.h"
#include "core/view.h"

namespace tessera {

namespace {

enum class Format { Png, Jpeg, Bmp };

Format sniff(const unsigned char* p, size_t n, const std::string& name) {
  if (n >= 8 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return Format::Png;
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return Format::Jpeg;
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return Format::Bmp;
  TS_ERROR(name, ": unsupported or unrecognised image format (tessera reads PNG, JPEG and BMP)");
}

void check_complete(Format f, const unsigned char* p, size_t n, const std::string& name) {
  if (f == Format::Jpeg) {
    // The end-of-image marker, possibly followed by padding.
    size_t end = n;
    while (end > 2 && (p[end - 1] == 0 || p[end - 1] == '\n' || p[end - 1] == '\r')) --end;
    TS_CHECK(end >= 4 && p[end - 2] == 0xFF && p[end - 1] == 0xD9, name,
             ": truncated JPEG (no end-of-image marker)");
  } else if (f == Format::Bmp) {
    TS_CHECK(n >= 14, name, ": truncated BMP header");
    const uint32_t declared = p[2] | (p[3] << 8) | (p[4] << 16) | (static_cast<uint32_t>(p[5]) << 24);
    TS_CHECK(declared == 0 || declared <= n, name, ": truncated BMP (", n, " bytes, the header says ", declared, ")");
  }
}

struct StbFree {
  void operator()(void* p) const { stbi_image_free(p); }
};

}  // namespace

Tensor decode_image(const void* data, size_t size, const std::string& name, int channels) {
  TS_CHECK(channels == 0 || channels == 1 || channels == 3 || channels == 4, name, ": channels must be 0, 1, 3 or 4, got ",
           channels);
  const auto* p = static_cast<const unsigned char*>(data);
  TS_CHECK(size > 0, name, ": empty file");
  TS_CHECK(size < (size_t{1} << 31), name, ": file too large for the image decoder");
  const Format f = sniff(p, size, name);
  check_complete(f, p, size, name);
  const int n = static_cast<int>(size);
  int w = 0, h = 0, c = 0;
  TS_CHECK(stbi_info_from_memory(p, n, &w, &h, &c), name, ": corrupt image header (", stbi_failure_reason(), ")");
  TS_CHECK(w > 0 && h > 0 && static_cast<int64_t>(w) * h <= (int64_t{1} << 28), name, ": implausible image size ", w,
           " x ", h);
  const bool sixteen = stbi_is_16_bit_from_memory(p, n);
  int got_w = 0, got_h = 0, stored = 0;
  const int out_c = channels == 0 ? c : channels;
  Tensor img = raw::empty({out_c, h, w}, DType::Float32, kCPU);
  float* o = img.data<float>();
  const int64_t plane = static_cast<int64_t>(w) * h;
  if (sixteen) {
    std::unique_ptr<stbi_us, StbFree> pix(stbi_load_16_from_memory(p, n, &got_w, &got_h, &stored, channels));
    TS_CHECK(pix != nullptr, name, ": cannot decode (", stbi_failure_reason(), ")");
    for (int64_t i = 0; i < plane; ++i)
      for (int k = 0; k < out_c; ++k) o[k * plane + i] = static_cast<float>(pix.get()[i * out_c + k]) / 65535.0f;
  } else {
    std::unique_ptr<stbi_uc, StbFree> pix(stbi_load_from_memory(p, n, &got_w, &got_h, &stored, channels));
    TS_CHECK(pix != nullptr, name, ": cannot decode (", stbi_failure_reason(), ")");
    for (int64_t i = 0; i < plane; ++i)
      for (int k = 0; k < out_c; ++k) o[k * plane + i] = static_cast<float>(pix.get()[i * out_c + k]) / 255.0f;
  }
  TS_CHECK(got_w == w && got_h == h, name, ": decoded size differs from the header");
  return img;
}

Tensor read_image(const std::string& path, int channels) {
  std::vector<char> bytes = read_file(path);
  return decode_image(bytes.data(), bytes.size(), path, channels);
}

Tensor read_label_image(const std::string& path) {
  std::vector<char> bytes = read_file(path);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  TS_CHECK(!bytes.empty(), path, ": empty file");
  const Format f = sniff(p, bytes.size(), path);
  check_complete(f, p, bytes.size(), path);
  const int n = static_cast<int>(bytes.size());
  int w = 0, h = 0, c = 0;
  TS_CHECK(stbi_info_from_memory(p, n, &w, &h, &c), path, ": corrupt image header (", stbi_failure_reason(), ")");
  TS_CHECK(c == 1, path, ": a label image must have one channel, this one has ", c);
  TS_CHECK(f != Format::Jpeg, path, ": label images must be lossless (PNG or BMP), not JPEG");
  Tensor labels = raw::empty({h, w}, DType::Int64, kCPU);
  int64_t* o = labels.data<int64_t>();
  int got_w = 0, got_h = 0, stored = 0;
  if (stbi_is_16_bit_from_memory(p, n)) {
    std::unique_ptr<stbi_us, StbFree> pix(stbi_load_16_from_memory(p, n, &got_w, &got_h, &stored, 1));
    TS_CHECK(pix != nullptr, path, ": cannot decode (", stbi_failure_reason(), ")");
    for (int64_t i = 0; i < static_cast<int64_t>(w) * h; ++i) o[i] = pix.get()[i];
  } else {
    std::unique_ptr<stbi_uc, StbFree> pix(stbi_load_from_memory(p, n, &got_w, &got_h, &stored, 1));
    TS_CHECK(pix != nullptr, path, ": cannot decode (", stbi_failure_reason(), ")");
    for (int64_t i = 0; i < static_cast<int64_t>(w) * h; ++i) o[i] = pix.get()[i];
  }
  return labels;
}

std::string encode_png(const Tensor& image_in) {
  TS_CHECK(image_in.defined() && (image_in.dim() == 2 || image_in.dim() == 3), "write_png: expected [H, W] or [C, H, W], got ",
           image_in.defined() ? shape_str(image_in.shape()) : "undefined");
  Tensor image = raw::to(image_in, kCPU);
  if (image.dim() == 2) image = raw::unsqueeze(image, 0);
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  TS_CHECK(C >= 1 && C <= 4, "write_png: 1 to 4 channels, got ", C);
  TS_CHECK(H > 0 && W > 0, "write_png: empty image");
  Tensor bytes;
  if (image.dtype() == DType::UInt8) {
    bytes = image;
  } else {
    TS_CHECK(is_floating(image.dtype()), "write_png: expected uint8 or a floating image in [0, 1], got ", dtype_name(image.dtype()));
    NoGradGuard g;
    bytes = add(mul(clamp(image.to(kFloat32), 0.0, 1.0), 255.0), 0.5).to(kUInt8);  // round half up, then truncate
  }
  Tensor hwc = raw::contiguous(raw::permute(bytes, {1, 2, 0}));
  std::string out;
  auto sink = [](void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append(static_cast<char*>(data), size); };
  const int ok = stbi_write_png_to_func(sink, &out, static_cast<int>(W), static_cast<int>(H), static_cast<int>(C),
                                        hwc.data_ptr(), static_cast<int>(W * C));
  TS_CHECK(ok, "write_png: encoding failed");
  return out;
}

void write_png(const std::string& path, const Tensor& image) {
  const std::string png = encode_png(image);
  write_file_atomic(path, [&](std::ostream& o) { o.write(png.data(), static_cast<std::streamsize>(png.size())); });
}

}  // namespace tessera
