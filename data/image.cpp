// Image decoding and PNG writing through stb (Debian's libstb; JPEG through libjpeg-turbo, as
// torchvision and PIL decode it), with the checks the decoders leave out:
// the format is identified by its magic bytes, and JPEG/BMP truncation (which stb decodes as
// zeros) is detected from the end-of-image marker and the BMP header's file size.
#include "data/image.h"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE
#include <cmath>
#include <cstring>
#include <memory>

#include <jpeglib.h>
#include <jerror.h>

#include "autograd/ops.h"
#include "core/file_io.h"
#include "core/view.h"
#include "data/tiff.h"

namespace tessera {

namespace {

enum class Format { Png, Jpeg, Bmp };

Format sniff(const unsigned char* p, size_t n, const std::string& name) {
  if (n >= 8 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return Format::Png;
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return Format::Jpeg;
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return Format::Bmp;
  TS_ERROR(name, ": unsupported or unrecognised image format (tessera reads PNG, JPEG, BMP and TIFF)");
}

// What the walks of a file's structure learn: enough to bound the pixels its data can hold, and
// to read label images as they are stored.
struct Structure {
  int png_depth = 0, png_color = -1;    // IHDR's bit depth and colour type (3: palette)
  uint64_t png_idat_bytes = 0;          // the compressed image data
  size_t plte_at = 0, plte_length = 0;  // the palette's entries, when there is a PLTE chunk
  std::vector<std::pair<int, int>> jpeg_sampling;  // the frame's components' (H, V) sampling factors
};

uint32_t be32(const unsigned char* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) | (static_cast<uint32_t>(p[2]) << 8) | p[3];
}

bool is_jpeg_frame(unsigned char marker) {  // SOF0..SOF15 without DHT (C4), JPG (C8) and DAC (CC)
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

// JPEG's segments, walked as stb will read them: each inside the file, and each Huffman table with
// at most 256 codes. (Debian's stb 2.27 writes past its 257-entry table for more: found by
// fuzz_image under UBSan; stb 2.28 checks it.) The first frame header gives the sampling factors.
void check_jpeg_segments(const unsigned char* p, size_t n, const std::string& name, Structure& st) {
  size_t at = 2;  // after SOI
  while (at + 1 < n) {
    if (p[at] != 0xFF) {
      ++at;  // entropy-coded data of a scan, up to the next marker
      continue;
    }
    const unsigned char marker = p[at + 1];
    if (marker == 0x00 || marker == 0xFF || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      at += marker == 0xFF ? 1 : 2;  // stuffed byte, fill byte, or a marker without a length
      continue;
    }
    if (marker == 0xD9) return;  // EOI
    TS_CHECK(n - at >= 4, name, ": truncated JPEG (a segment header is cut at byte ", at, ")");
    const size_t length = (static_cast<size_t>(p[at + 2]) << 8) | p[at + 3];
    TS_CHECK(length >= 2 && length <= n - at - 2, name, ": truncated JPEG (the segment at byte ", at, " claims ", length,
             " bytes, ", n - at - 2, " remain)");
    if (marker == 0xC4) {  // DHT: tables of (class/id, 16 counts, symbols)
      for (size_t q = at + 4, end = at + 2 + length; q < end;) {
        TS_CHECK(end - q >= 17, name, ": corrupt JPEG Huffman table at byte ", q);
        size_t codes = 0;
        for (int k = 1; k <= 16; ++k) codes += p[q + k];
        TS_CHECK(codes <= 256 && codes <= end - q - 17, name, ": corrupt JPEG Huffman table at byte ", q, " (", codes,
                 " codes; at most 256, within the segment)");
        q += 17 + codes;
      }
    } else if (is_jpeg_frame(marker) && st.jpeg_sampling.empty()) {
      // precision, height, width, component count, then (id, H << 4 | V, quantisation table) each
      const size_t components = length >= 8 ? p[at + 9] : 0;
      TS_CHECK(components >= 1 && length >= 8 + 3 * components, name, ": corrupt JPEG frame header at byte ", at);
      for (size_t k = 0; k < components; ++k) {
        const unsigned char hv = p[at + 10 + 3 * k + 1];
        st.jpeg_sampling.emplace_back(hv >> 4, hv & 15);
      }
    }
    at += 2 + length;
  }
}

Structure check_complete(Format f, const unsigned char* p, size_t n, const std::string& name) {
  Structure st;
  if (f == Format::Jpeg) {
    // The end-of-image marker, possibly followed by padding.
    size_t end = n;
    while (end > 2 && (p[end - 1] == 0 || p[end - 1] == '\n' || p[end - 1] == '\r')) --end;
    TS_CHECK(end >= 4 && p[end - 2] == 0xFF && p[end - 1] == 0xD9, name,
             ": truncated JPEG (no end-of-image marker)");
    check_jpeg_segments(p, n, name, st);
  } else if (f == Format::Png) {
    // Every chunk inside the file, up to IEND: stb sizes its compressed-data buffer by the chunk
    // lengths before it reads them (a 76-byte file asked for 900 MB under the fuzzer).
    size_t at = 8;
    for (;;) {
      TS_CHECK(n - at >= 12, name, ": truncated PNG (a chunk header is cut at byte ", at, ")");
      const uint32_t length = be32(p + at);
      TS_CHECK(length <= n - at - 12, name, ": truncated PNG (the chunk at byte ", at, " claims ", length, " bytes, ",
               n - at - 12, " remain)");
      const unsigned char* type = p + at + 4;
      if (std::memcmp(type, "IHDR", 4) == 0 && length >= 13) {
        st.png_depth = p[at + 16];  // after width and height
        st.png_color = p[at + 17];
      } else if (std::memcmp(type, "IDAT", 4) == 0) {
        st.png_idat_bytes += length;
      } else if (std::memcmp(type, "PLTE", 4) == 0 && st.plte_length == 0) {
        st.plte_at = at + 8;
        st.plte_length = length;
      }
      at += 12 + static_cast<size_t>(length);
      if (std::memcmp(type, "IEND", 4) == 0) break;
    }
  } else if (f == Format::Bmp) {
    TS_CHECK(n >= 14, name, ": truncated BMP header");
    const uint32_t declared = p[2] | (p[3] << 8) | (p[4] << 16) | (static_cast<uint32_t>(p[5]) << 24);
    TS_CHECK(declared == 0 || declared <= n, name, ": truncated BMP (", n, " bytes, the header says ", declared, ")");
  }
  return st;
}

struct StbFree {
  void operator()(void* p) const { stbi_image_free(p); }
};

}  // namespace

namespace {

// What every decode checks before stb touches the pixels: a non-empty file of a known format that
// is not cut short, a readable header, and a size its data can hold (an image's size sets the
// allocation).
struct Header {
  Format format = Format::Png;
  int bytes = 0, w = 0, h = 0, c = 0;
  bool sixteen = false;
  Structure structure;
};

// The decoder allocates (and fills) the whole image at once, so a few bytes must not claim
// gigabytes or minutes of decoding. Each format has a densest coding, which bounds the pixels a
// file of its size can hold; every real file is within it (with an allowance for tiny files):
//  - PNG: deflate expands at most 1032 times (a 258-byte copy in two 1-bit codes), so the header's
//    samples at its bit depth must fit in 1032 x the IDAT bytes (a 1-bit 4096 x 4096 mask: 10 KB);
//  - JPEG: each 8 x 8 block of each component costs at least one bit (its DC code), so the blocks
//    the frame implies must fit in 8 x the file's bytes;
//  - BMP: stored uncompressed (stb reads no RLE), at least one bit a pixel.
void check_capacity(const Header& hd, size_t size, const std::string& name) {
  const uint64_t w = static_cast<uint64_t>(hd.w), h = static_cast<uint64_t>(hd.h), n = size;
  const Structure& st = hd.structure;
  bool fits = true;
  if (hd.format == Format::Png) {
    static const int kSamples[7] = {1, 0, 3, 1, 2, 0, 4};  // per pixel, by colour type
    const int samples = st.png_color >= 0 && st.png_color <= 6 ? std::max(kSamples[st.png_color], 1) : 1;
    const uint64_t bits = w * h * static_cast<uint64_t>(samples) * static_cast<uint64_t>(std::max(st.png_depth, 1));
    fits = bits / 8 <= 1032 * st.png_idat_bytes + 4096;
  } else if (hd.format == Format::Jpeg) {
    std::vector<std::pair<int, int>> sampling = st.jpeg_sampling;
    if (sampling.empty()) sampling.emplace_back(1, 1);  // stb found a frame the walk did not: one full-size component
    int hmax = 1, vmax = 1;
    for (const auto& [hs, vs] : sampling) {
      hmax = std::max(hmax, hs);
      vmax = std::max(vmax, vs);
    }
    uint64_t blocks = 0;
    for (const auto& [hs, vs] : sampling) {
      const uint64_t cw = (w * static_cast<uint64_t>(std::max(hs, 1)) + hmax - 1) / hmax;
      const uint64_t ch = (h * static_cast<uint64_t>(std::max(vs, 1)) + vmax - 1) / vmax;
      blocks += ((cw + 7) / 8) * ((ch + 7) / 8);
    }
    fits = blocks <= 8 * n + (uint64_t{1} << 14);
  } else {
    fits = w * h <= 8 * n + (uint64_t{1} << 20);
  }
  TS_CHECK(fits, name, ": a ", size, "-byte file claims a ", hd.w, " x ", hd.h, " image, more than its data can hold");
}

Header read_header(const unsigned char* p, size_t size, const std::string& name) {
  TS_CHECK(size > 0, name, ": empty file");
  TS_CHECK(size < (size_t{1} << 31), name, ": file too large for the image decoder");
  Header hd;
  hd.format = sniff(p, size, name);
  hd.bytes = static_cast<int>(size);
  hd.structure = check_complete(hd.format, p, size, name);
  TS_CHECK(stbi_info_from_memory(p, hd.bytes, &hd.w, &hd.h, &hd.c), name, ": corrupt image header (",
           stbi_failure_reason(), ")");
  TS_CHECK(hd.w > 0 && hd.h > 0 && static_cast<int64_t>(hd.w) * hd.h <= (int64_t{1} << 28), name,
           ": implausible image size ", hd.w, " x ", hd.h);
  hd.sixteen = stbi_is_16_bit_from_memory(p, hd.bytes);
  check_capacity(hd, size, name);
  return hd;
}

// Why stb gave no pixels: its own reason, or (its reasons are empty in some builds) what it means.
std::string why_not_decoded(const Header& hd) {
  const char* reason = stbi_failure_reason();
  if (reason != nullptr && *reason != '\0') return reason;
  return "the pixel data ends early or is corrupt: " + std::to_string(hd.bytes) + " bytes for a " + std::to_string(hd.w) +
         " x " + std::to_string(hd.h) + " image";
}

// ---- JPEG through libjpeg-turbo, the decoder of torchvision's decode_jpeg and of PIL: the same
// pixels to the last level (stb's own JPEG decoder differs from them by up to 3 levels on 7% of
// the values of a 4:2:0 photo, and Debian's stb 2.27 shifts by 37 bits on corrupt entropy data:
// found by fuzz_image under UBSan).

struct JpegErrors {
  jpeg_error_mgr mgr;  // first: libjpeg holds a jpeg_error_mgr*
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings that mean pixel data is missing are errors (libjpeg would fill the rest with gray);
// others (e.g. stray bytes before a marker, which PIL and torchvision accept) are ignored.
void jpeg_warning(j_common_ptr cinfo, int level) {
  if (level == -1 && (cinfo->err->msg_code == JWRN_JPEG_EOF || cinfo->err->msg_code == JWRN_HIT_MARKER)) jpeg_fail(cinfo);
}

// Pixels [h, w, out_c] (out_c 1: gray, libjpeg's luma as torchvision's GRAY mode; 3: RGB; 4: RGBA
// with alpha 255). Four-component files (CMYK as Adobe stores it, inverted) become RGB with
// Pillow's arithmetic, which torchvision's newer decode_jpeg follows: r = k - k (255 - c) / 255,
// rounded; their gray is Pillow's (19595 r + 38470 g + 7471 b) / 65536, rounded.
std::vector<unsigned char> decode_jpeg(const unsigned char* p, const Header& hd, const std::string& name, int out_c) {
  // Everything with a destructor exists before setjmp: a longjmp back past a later one would skip it.
  std::vector<unsigned char> pixels(static_cast<size_t>(hd.w) * static_cast<size_t>(hd.h) * static_cast<size_t>(out_c));
  std::vector<unsigned char> row(static_cast<size_t>(hd.w) * 4);  // a CMYK row
  jpeg_decompress_struct cinfo{};
  struct Destroy {
    jpeg_decompress_struct* c;
    ~Destroy() { jpeg_destroy_decompress(c); }  // a no-op before jpeg_create_decompress
  } destroy{&cinfo};
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.mgr);
  errors.mgr.error_exit = jpeg_fail;
  errors.mgr.emit_message = jpeg_warning;
  if (setjmp(errors.jump)) TS_ERROR(name, ": cannot decode (", errors.message, ")");
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, p, static_cast<unsigned long>(hd.bytes));
  jpeg_read_header(&cinfo, TRUE);
  const bool cmyk = cinfo.num_components == 4;
  cinfo.out_color_space = cmyk ? JCS_CMYK : out_c == 1 ? JCS_GRAYSCALE : out_c == 3 ? JCS_RGB : JCS_EXT_RGBA;
  jpeg_start_decompress(&cinfo);
  TS_CHECK(static_cast<int>(cinfo.output_width) == hd.w && static_cast<int>(cinfo.output_height) == hd.h, name,
           ": decoded size differs from the header");
  const size_t w = static_cast<size_t>(hd.w), oc = static_cast<size_t>(out_c);
  while (cinfo.output_scanline < cinfo.output_height) {
    unsigned char* dst = pixels.data() + static_cast<size_t>(cinfo.output_scanline) * w * oc;
    JSAMPROW rows[1] = {cmyk ? row.data() : dst};
    jpeg_read_scanlines(&cinfo, rows, 1);
    if (!cmyk) continue;
    for (size_t x = 0; x < w; ++x) {
      const unsigned char* q = row.data() + 4 * x;
      const int k = q[3];
      auto channel = [k](int c) {
        const int t = k * (255 - c) + 128;
        return std::clamp(k - (((t >> 8) + t) >> 8), 0, 255);  // k - round(k (255 - c) / 255)
      };
      const int r = channel(q[0]), g = channel(q[1]), b = channel(q[2]);
      if (out_c == 1) {
        dst[x] = static_cast<unsigned char>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
        continue;
      }
      dst[oc * x] = static_cast<unsigned char>(r);
      dst[oc * x + 1] = static_cast<unsigned char>(g);
      dst[oc * x + 2] = static_cast<unsigned char>(b);
      if (out_c == 4) dst[oc * x + 3] = 255;
    }
  }
  jpeg_finish_decompress(&cinfo);
  return pixels;
}

// Decodes into `out(i, k, value)` for pixel i and channel k of `channels` (0: the file's own), the
// value scaled to [0, 1] (scale true) or as stored.
template <class Out>
void decode_pixels(const unsigned char* p, const Header& hd, const std::string& name, int channels, bool scale, Out&& out) {
  const int out_c = channels == 0 ? hd.c : channels;
  const int64_t plane = static_cast<int64_t>(hd.w) * hd.h;
  int got_w = 0, got_h = 0, stored = 0;
  if (hd.format == Format::Jpeg) {
    const std::vector<unsigned char> pix = decode_jpeg(p, hd, name, out_c);
    for (int64_t i = 0; i < plane; ++i)
      for (int k = 0; k < out_c; ++k) out(i, k, static_cast<float>(pix[static_cast<size_t>(i * out_c + k)]) / (scale ? 255.0f : 1.0f));
  } else if (hd.sixteen) {
    std::unique_ptr<stbi_us, StbFree> pix(stbi_load_16_from_memory(p, hd.bytes, &got_w, &got_h, &stored, channels));
    TS_CHECK(pix != nullptr, name, ": cannot decode (", why_not_decoded(hd), ")");
    TS_CHECK(got_w == hd.w && got_h == hd.h, name, ": decoded size differs from the header");
    for (int64_t i = 0; i < plane; ++i)
      for (int k = 0; k < out_c; ++k) out(i, k, static_cast<float>(pix.get()[i * out_c + k]) / (scale ? 65535.0f : 1.0f));
  } else {
    std::unique_ptr<stbi_uc, StbFree> pix(stbi_load_from_memory(p, hd.bytes, &got_w, &got_h, &stored, channels));
    TS_CHECK(pix != nullptr, name, ": cannot decode (", why_not_decoded(hd), ")");
    TS_CHECK(got_w == hd.w && got_h == hd.h, name, ": decoded size differs from the header");
    for (int64_t i = 0; i < plane; ++i)
      for (int k = 0; k < out_c; ++k) out(i, k, static_cast<float>(pix.get()[i * out_c + k]) / (scale ? 255.0f : 1.0f));
  }
}

// A one-page stack as its page; a multi-page TIFF is an Error that names the stack reader.
Tensor single_page(const Tensor& stack, const std::string& name) {
  TS_CHECK(stack.size(0) == 1, name, ": a stack of ", stack.size(0), " pages where one image was expected (read stacks with "
           "read_image_stack / read_label_stack; the drivers take them as --data-volume/--data-labels or predict them page by page)");
  return stack.select(0, 0).contiguous();
}

}  // namespace

Tensor decode_image(const void* data, size_t size, const std::string& name, int channels) {
  TS_CHECK(channels == 0 || channels == 1 || channels == 3 || channels == 4, name, ": channels must be 0, 1, 3 or 4, got ",
           channels);
  if (is_tiff(data, size)) return single_page(decode_tiff(data, size, name, channels), name);
  const auto* p = static_cast<const unsigned char*>(data);
  const Header hd = read_header(p, size, name);
  const int out_c = channels == 0 ? hd.c : channels;
  Tensor img = raw::empty({out_c, hd.h, hd.w}, DType::Float32, kCPU);
  float* o = img.data<float>();
  const int64_t plane = static_cast<int64_t>(hd.w) * hd.h;
  decode_pixels(p, hd, name, channels, true, [&](int64_t i, int k, float v) { o[k * plane + i] = v; });
  return img;
}

Tensor read_image(const std::string& path, int channels) {
  std::vector<char> bytes = read_file(path);
  return decode_image(bytes.data(), bytes.size(), path, channels);
}

Tensor read_label_image(const std::string& path) {
  const std::vector<char> bytes = read_file(path);
  return decode_label_image(bytes.data(), bytes.size(), path);
}

Tensor decode_label_image(const void* data, size_t size, const std::string& path) {
  if (is_tiff(data, size)) return single_page(decode_tiff_labels(data, size, path), path);
  const auto* p = static_cast<const unsigned char*>(data);
  const Header hd = read_header(p, size, path);  // the same checks as any image
  TS_CHECK(hd.format != Format::Jpeg, path, ": label images must be lossless (PNG or BMP), not JPEG");
  const Structure& st = hd.structure;
  const bool palette = hd.format == Format::Png && st.png_color == 3;
  TS_CHECK(hd.c == 1 || palette, path, ": a label image must have one channel (or a palette), this one has ", hd.c);
  Tensor labels = raw::empty({hd.h, hd.w}, DType::Int64, kCPU);
  int64_t* o = labels.data<int64_t>();
  if (palette) {
    // The labels are the palette's indices (PASCAL VOC's masks: a colour per class, 255 at borders),
    // as PIL reads them. stb only gives colours, so the file is decoded with its palette replaced by
    // one of 256 grays, index i -> (i, i, i): stb's gray (77 r + 150 g + 29 b) >> 8 is then exactly
    // i, for indices past the file's own palette too. (stb does not check chunk CRCs.)
    TS_CHECK(st.plte_length > 0, path, ": a palette PNG without a palette");
    std::string copy(reinterpret_cast<const char*>(p), st.plte_at - 8);
    copy += std::string("\x00\x00\x03\x00PLTE", 8);
    for (int i = 0; i < 256; ++i) copy.append(3, static_cast<char>(i));
    copy.append(4, '\0');  // the CRC
    copy.append(reinterpret_cast<const char*>(p) + st.plte_at + st.plte_length + 4, size - (st.plte_at + st.plte_length + 4));
    TS_CHECK(copy.size() < (size_t{1} << 31), path, ": file too large for the image decoder");
    Header gray = hd;
    gray.bytes = static_cast<int>(copy.size());
    decode_pixels(reinterpret_cast<const unsigned char*>(copy.data()), gray, path, 1, false,
                  [&](int64_t i, int, float v) { o[i] = static_cast<int64_t>(v); });
    return labels;
  }
  // Gray PNGs of 1, 2 or 4 bits: stb scales their samples to 0..255; the labels are the samples.
  const bool low_bits = hd.format == Format::Png && st.png_color == 0 && (st.png_depth == 1 || st.png_depth == 2 || st.png_depth == 4);
  const int64_t scale = low_bits ? 255 / ((1 << st.png_depth) - 1) : 1;
  decode_pixels(p, hd, path, 1, false, [&](int64_t i, int, float v) { o[i] = static_cast<int64_t>(v) / scale; });
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
