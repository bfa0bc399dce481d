// TIFF reading and writing through libtiff, over memory (the readers take bytes, so that the fuzz
// target and the file readers run the same code). libtiff reports problems through handlers; each
// open gets its own (TIFFOpenOptions), which keep the first message for the Error.
#include "data/tiff.h"

#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "core/file_io.h"
#include "core/view.h"
#include "data/image.h"

namespace tessera {

namespace {

// ---- libtiff over a byte buffer

struct Buffer {
  const unsigned char* read = nullptr;  // reading: the caller's bytes
  std::string* written = nullptr;       // writing: the growing file
  size_t size = 0, at = 0;
  std::string error;  // the first error libtiff reported
};

tsize_t buf_read(thandle_t h, tdata_t out, tsize_t n) {
  auto* b = static_cast<Buffer*>(h);
  const unsigned char* src = b->read ? b->read : reinterpret_cast<const unsigned char*>(b->written->data());
  if (n <= 0 || b->at >= b->size) return 0;
  const size_t k = std::min(static_cast<size_t>(n), b->size - b->at);
  std::memcpy(out, src + b->at, k);
  b->at += k;
  return static_cast<tsize_t>(k);
}

tsize_t buf_write(thandle_t h, tdata_t in, tsize_t n) {
  auto* b = static_cast<Buffer*>(h);
  if (!b->written || n < 0) return -1;
  const size_t k = static_cast<size_t>(n);
  if (b->at + k > b->written->size()) b->written->resize(b->at + k);
  std::memcpy(b->written->data() + b->at, in, k);
  b->at += k;
  b->size = b->written->size();
  return n;
}

toff_t buf_seek(thandle_t h, toff_t off, int whence) {
  auto* b = static_cast<Buffer*>(h);
  uint64_t base = whence == SEEK_CUR ? b->at : whence == SEEK_END ? b->size : 0;
  const uint64_t to = base + off;
  if (to < base || to > (uint64_t{1} << 40)) return static_cast<toff_t>(-1);
  b->at = static_cast<size_t>(to);
  return to;
}

int buf_close(thandle_t) { return 0; }
toff_t buf_size(thandle_t h) { return static_cast<Buffer*>(h)->size; }
int buf_map(thandle_t, tdata_t*, toff_t*) { return 0; }
void buf_unmap(thandle_t, tdata_t, toff_t) {}

int on_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  auto* b = static_cast<Buffer*>(user);
  if (b->error.empty()) {
    char msg[512];
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    b->error = (module && *module ? std::string(module) + ": " : std::string()) + msg;
  }
  return 1;  // handled: nothing reaches the global handler (stderr)
}
int on_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

struct TiffCloser {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

TiffPtr open_buffer(Buffer& b, const char* mode, const std::string& name) {
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TS_CHECK(opts != nullptr, name, ": out of memory opening a TIFF");
  TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, &b);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, &b);
  TIFFOpenOptionsSetMaxSingleMemAlloc(opts, tmsize_t{1} << 31);
  TIFF* t = TIFFClientOpenExt(name.c_str(), mode, &b, buf_read, buf_write, buf_seek, buf_close, buf_size, buf_map, buf_unmap, opts);
  TIFFOpenOptionsFree(opts);
  TS_CHECK(t != nullptr, name, ": not a readable TIFF (", b.error.empty() ? "libtiff could not open it" : b.error, ")");
  return TiffPtr(t);
}

// ---- reading

// One page's samples as stored (native byte order), interleaved: [H][W][spp].
struct Page {
  int64_t w = 0, h = 0;
  int spp = 1, bits = 8;
  bool floating = false;
  uint64_t least_stored = 0;  // the fewest compressed bytes that can hold the page
  std::vector<unsigned char> bytes;
  double at(size_t i) const {  // sample i
    const unsigned char* p = bytes.data() + i * static_cast<size_t>(bits / 8);
    if (floating) {
      if (bits == 32) { float f; std::memcpy(&f, p, 4); return f; }
      double d; std::memcpy(&d, p, 8); return d;
    }
    if (bits == 8) return *p;
    if (bits == 16) { uint16_t v; std::memcpy(&v, p, 2); return v; }
    uint32_t v; std::memcpy(&v, p, 4); return v;
  }
};

const char* compression_name(uint16_t c) {
  switch (c) {
    case COMPRESSION_NONE: return "none";
    case COMPRESSION_LZW: return "LZW";
    case COMPRESSION_ADOBE_DEFLATE: case COMPRESSION_DEFLATE: return "Deflate";
    case COMPRESSION_PACKBITS: return "PackBits";
    case COMPRESSION_JPEG: case COMPRESSION_OJPEG: return "JPEG";
    case COMPRESSION_CCITTRLE: case COMPRESSION_CCITTFAX3: case COMPRESSION_CCITTFAX4: return "CCITT";
    case COMPRESSION_LZMA: return "LZMA";
    case COMPRESSION_ZSTD: return "ZSTD";
    case COMPRESSION_WEBP: return "WebP";
    default: return nullptr;
  }
}

// The most a compressed byte can expand to: none 1; PackBits 64 (a 2-byte run of 128); Deflate
// 1032 (a 258-byte copy in two 1-bit codes); LZW 3641 (a 9-bit code for a 4096-byte string).
uint64_t max_expansion(uint16_t c) {
  switch (c) {
    case COMPRESSION_NONE: return 1;
    case COMPRESSION_PACKBITS: return 64;
    case COMPRESSION_ADOBE_DEFLATE: case COMPRESSION_DEFLATE: return 1032;
    case COMPRESSION_LZW: return 3641;
    default: return 0;
  }
}

Page read_page(TIFF* t, Buffer& b, const std::string& where, size_t file_size) {
  uint32_t w = 0, h = 0;
  uint16_t spp = 1, bits = 1, format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG, photometric = 0, compression = 1;
  TS_CHECK(TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w) && TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h), where, ": no image size");
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &format);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &compression);
  TS_CHECK(TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photometric), where, ": no PhotometricInterpretation tag");
  TS_CHECK(w > 0 && h > 0 && w <= (1u << 20) && h <= (1u << 20), where, ": image size ", w, " x ", h,
           " is outside 1..1048576");
  TS_CHECK(spp >= 1 && spp <= 4, where, ": ", spp, " samples per pixel (tessera reads 1 to 4)");
  const uint64_t ratio = max_expansion(compression);
  const char* cname = compression_name(compression);
  TS_CHECK(ratio > 0, where, ": ", cname ? cname : "unknown", " compression (", compression,
           "); tessera reads uncompressed, LZW, Deflate and PackBits TIFFs");
  const bool floating = format == SAMPLEFORMAT_IEEEFP;
  TS_CHECK((format == SAMPLEFORMAT_UINT && (bits == 8 || bits == 16 || bits == 32)) || (floating && (bits == 32 || bits == 64)),
           where, ": ", bits, "-bit ", format == SAMPLEFORMAT_INT ? "signed" : floating ? "float" : format == SAMPLEFORMAT_UINT ? "unsigned" : "unknown-format",
           " samples (tessera reads 8-, 16- and 32-bit unsigned and 32- and 64-bit float)");
  TS_CHECK(photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE || photometric == PHOTOMETRIC_RGB, where,
           ": photometric interpretation ", photometric, " (tessera reads gray and RGB; palette, YCbCr and CMYK are not read)");
  TS_CHECK(planar == PLANARCONFIG_CONTIG || planar == PLANARCONFIG_SEPARATE, where, ": planar configuration ", planar);
  Page pg;
  pg.w = w;
  pg.h = h;
  pg.spp = spp;
  pg.bits = bits;
  pg.floating = floating;
  const size_t sample_bytes = bits / 8;
  const uint64_t total = uint64_t{w} * h * spp * sample_bytes;
  // The pixels the header claims must fit in what the page's compressed bytes can expand to.
  const bool tiled = TIFFIsTiled(t);
  const uint32_t chunks = tiled ? TIFFNumberOfTiles(t) : TIFFNumberOfStrips(t);
  uint64_t* counts = nullptr;
  TS_CHECK(TIFFGetField(t, tiled ? TIFFTAG_TILEBYTECOUNTS : TIFFTAG_STRIPBYTECOUNTS, &counts) && counts != nullptr, where,
           ": no ", tiled ? "tile" : "strip", " byte counts");
  uint64_t stored = 0;
  for (uint32_t i = 0; i < chunks; ++i) stored += std::min<uint64_t>(counts[i], file_size);
  stored = std::min<uint64_t>(stored, file_size);
  TS_CHECK(total <= ratio * stored + 4096, where, ": the header claims ", w, " x ", h, " x ", spp, " samples of ", bits,
           " bits (", total, " bytes) but its ", cname, " data is ", stored, " bytes: truncated or corrupt");
  pg.least_stored = total / ratio;
  pg.bytes.assign(total, 0);
  const size_t planes = planar == PLANARCONFIG_SEPARATE ? spp : 1, per_pixel = planar == PLANARCONFIG_SEPARATE ? 1 : spp;
  // Copies rows of one chunk (per_pixel samples a pixel) into the interleaved page.
  auto place = [&](const unsigned char* src, size_t src_row_bytes, uint32_t x0, uint32_t y0, uint32_t cw, uint32_t ch, size_t plane) {
    for (uint32_t r = 0; r < ch; ++r)
      for (uint32_t c = 0; c < cw; ++c) {
        const unsigned char* s = src + r * src_row_bytes + c * per_pixel * sample_bytes;
        unsigned char* d = pg.bytes.data() + ((static_cast<size_t>(y0 + r) * w + x0 + c) * spp + plane) * sample_bytes;
        std::memcpy(d, s, per_pixel * sample_bytes);
      }
  };
  auto fail = [&](const char* what, uint32_t i) {
    TS_ERROR(where, ": ", what, " ", i, " cannot be decoded (", b.error.empty() ? "truncated or corrupt" : b.error, ")");
  };
  if (tiled) {
    uint32_t tw = 0, th = 0;
    TS_CHECK(TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw) && TIFFGetField(t, TIFFTAG_TILELENGTH, &th) && tw > 0 && th > 0, where,
             ": tiled without a tile size");
    const tmsize_t tile_bytes = TIFFTileSize(t);
    TS_CHECK(tile_bytes > 0 && static_cast<uint64_t>(tile_bytes) == uint64_t{tw} * th * per_pixel * sample_bytes, where,
             ": inconsistent tile size");
    std::vector<unsigned char> buf(static_cast<size_t>(tile_bytes));
    for (size_t p = 0; p < planes; ++p)
      for (uint32_t y = 0; y < h; y += th)
        for (uint32_t x = 0; x < w; x += tw) {
          const uint32_t tile = TIFFComputeTile(t, x, y, 0, static_cast<uint16_t>(p));
          if (TIFFReadEncodedTile(t, tile, buf.data(), tile_bytes) != tile_bytes) fail("tile", tile);
          place(buf.data(), size_t{tw} * per_pixel * sample_bytes, x, y, std::min(tw, w - x), std::min(th, h - y), p);
        }
  } else {
    uint32_t rows_per_strip = h;
    TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
    rows_per_strip = std::clamp<uint32_t>(rows_per_strip, 1, h);
    const size_t row_bytes = size_t{w} * per_pixel * sample_bytes;
    const uint32_t strips_per_plane = (h + rows_per_strip - 1) / rows_per_strip;
    TS_CHECK(uint64_t{strips_per_plane} * planes <= chunks, where, ": ", chunks, " strips for ", h, " rows of ", rows_per_strip);
    std::vector<unsigned char> buf(row_bytes * rows_per_strip);
    for (size_t p = 0; p < planes; ++p)
      for (uint32_t s = 0; s < strips_per_plane; ++s) {
        const uint32_t y = s * rows_per_strip, rows = std::min(rows_per_strip, h - y);
        const uint32_t strip = static_cast<uint32_t>(p * strips_per_plane + s);
        const tmsize_t want = static_cast<tmsize_t>(row_bytes * rows);
        if (TIFFReadEncodedStrip(t, strip, buf.data(), want) != want) fail("strip", strip);
        place(buf.data(), row_bytes, 0, y, w, rows, p);
      }
  }
  return pg;
}

// Every page of the file (reduced-resolution pages, i.e. thumbnails, are skipped).
std::vector<Page> read_pages(const void* data, size_t size, const std::string& name) {
  TS_CHECK(is_tiff(data, size), name, ": not a TIFF (no II*/MM* header)");
  Buffer b;
  b.read = static_cast<const unsigned char*>(data);
  b.size = size;
  TiffPtr t = open_buffer(b, "rm", name);
  std::vector<Page> pages;
  uint64_t least = 0;
  for (int64_t index = 0;; ++index) {
    uint32_t subfile = 0;
    TIFFGetFieldDefaulted(t.get(), TIFFTAG_SUBFILETYPE, &subfile);
    if (!(subfile & FILETYPE_REDUCEDIMAGE)) {
      const std::string where = name + " (page " + std::to_string(index) + ")";
      pages.push_back(read_page(t.get(), b, where, size));
      const Page& pg = pages.back();
      // Each page's data needs its own bytes: pages that share one strip's bytes cannot make a
      // small file claim gigabytes.
      least += pg.least_stored;
      TS_CHECK(least <= size + 4096 * pages.size(), name, ": ", pages.size(), " pages claim more pixels than the file's ", size,
               " bytes can hold: corrupt");
      if (pages.size() > 1) {
        const Page& first = pages.front();
        TS_CHECK(pg.w == first.w && pg.h == first.h && pg.spp == first.spp, where, " is ", pg.w, " x ", pg.h, " x ", pg.spp,
                 " but page 0 is ", first.w, " x ", first.h, " x ", first.spp, ": a stack's pages must agree");
      }
    }
    b.error.clear();
    if (!TIFFReadDirectory(t.get())) {
      TS_CHECK(b.error.empty(), name, ": the directory after page ", index, " is corrupt (", b.error, ")");
      break;
    }
  }
  TS_CHECK(!pages.empty(), name, ": no full-resolution page");
  return pages;
}

double full_scale(const Page& pg) {
  if (pg.floating) return 1.0;
  return pg.bits == 8 ? 255.0 : pg.bits == 16 ? 65535.0 : 4294967295.0;
}

}  // namespace

bool is_tiff(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  return size >= 4 && ((p[0] == 'I' && p[1] == 'I' && p[2] == 42 && p[3] == 0) || (p[0] == 'M' && p[1] == 'M' && p[2] == 0 && p[3] == 42));
}

Tensor decode_tiff(const void* data, size_t size, const std::string& name, int channels) {
  TS_CHECK(channels == 0 || channels == 1 || channels == 3 || channels == 4, name, ": channels must be 0, 1, 3 or 4, got ", channels);
  const std::vector<Page> pages = read_pages(data, size, name);
  const Page& first = pages.front();
  const int in_c = first.spp, out_c = channels == 0 ? in_c : channels;
  const int64_t H = first.h, W = first.w, plane = H * W;
  Tensor out = raw::empty({static_cast<int64_t>(pages.size()), out_c, H, W}, DType::Float32, kCPU);
  float* o = out.data<float>();
  for (size_t n = 0; n < pages.size(); ++n) {
    const Page& pg = pages[n];
    const double max = full_scale(pg), inv = 1.0 / max;
    const bool has_alpha = in_c == 2 || in_c == 4, color = in_c >= 3;
    float* dst = o + static_cast<int64_t>(n) * out_c * plane;
    for (int64_t i = 0; i < plane; ++i) {
      const size_t s = static_cast<size_t>(i) * in_c;
      double v[4] = {0, 0, 0, 0};
      for (int k = 0; k < in_c; ++k) v[k] = pg.at(s + k);
      double r = v[0], g = color ? v[1] : v[0], bl = color ? v[2] : v[0];
      const double a = has_alpha ? v[in_c - 1] : max;
      double gray = v[0];
      if (color) {  // stb's luma: integer for integer samples
        const double y = 77.0 * r + 150.0 * g + 29.0 * bl;
        gray = pg.floating ? y / 256.0 : std::floor(y / 256.0);
      }
      double res[4];
      if (out_c == in_c) {
        for (int k = 0; k < in_c; ++k) res[k] = v[k];
      } else if (out_c == 1) {
        res[0] = gray;
      } else if (out_c == 3) {
        res[0] = r, res[1] = g, res[2] = bl;
      } else {
        res[0] = r, res[1] = g, res[2] = bl, res[3] = a;
      }
      for (int k = 0; k < out_c; ++k) dst[k * plane + i] = static_cast<float>(pg.floating ? res[k] : res[k] * inv);
    }
  }
  return out;
}

Tensor decode_tiff_labels(const void* data, size_t size, const std::string& name) {
  const std::vector<Page> pages = read_pages(data, size, name);
  const Page& first = pages.front();
  TS_CHECK(first.spp == 1, name, ": a label image must have one channel, this TIFF has ", first.spp);
  const int64_t plane = first.h * first.w;
  Tensor out = raw::empty({static_cast<int64_t>(pages.size()), first.h, first.w}, DType::Int64, kCPU);
  int64_t* o = out.data<int64_t>();
  for (size_t n = 0; n < pages.size(); ++n) {
    TS_CHECK(!pages[n].floating, name, " (page ", n, "): float samples are not labels (a label image holds integer ids)");
    for (int64_t i = 0; i < plane; ++i) o[static_cast<int64_t>(n) * plane + i] = static_cast<int64_t>(pages[n].at(i));
  }
  return out;
}

Tensor read_image_stack(const std::string& path, int channels) {
  const std::vector<char> bytes = read_file(path);
  if (is_tiff(bytes.data(), bytes.size())) return decode_tiff(bytes.data(), bytes.size(), path, channels);
  return decode_image(bytes.data(), bytes.size(), path, channels).unsqueeze(0);
}

Tensor read_label_stack(const std::string& path) {
  const std::vector<char> bytes = read_file(path);
  if (is_tiff(bytes.data(), bytes.size())) return decode_tiff_labels(bytes.data(), bytes.size(), path);
  return decode_label_image(bytes.data(), bytes.size(), path).unsqueeze(0);
}

// ---- writing

std::string encode_tiff(const Tensor& pages_in) {
  TS_CHECK(pages_in.dim() == 2 || pages_in.dim() == 3, "write_tiff: expected [H, W] or [N, H, W], got ", shape_str(pages_in.shape()));
  Tensor pages = (pages_in.dim() == 2 ? pages_in.unsqueeze(0) : pages_in).cpu().contiguous();
  const DType dt = pages.dtype();
  TS_CHECK(dt == DType::Float32 || dt == DType::UInt8 || dt == DType::Int32 || dt == DType::Int64, "write_tiff: dtype ",
           dtype_name(dt), " (float32, uint8, int32 or int64)");
  const int64_t N = pages.size(0), H = pages.size(1), W = pages.size(2);
  TS_CHECK(N > 0 && H > 0 && W > 0, "write_tiff: empty image ", shape_str(pages.shape()));
  const int bits = dt == DType::Float32 ? 32 : dt == DType::UInt8 ? 8 : 16;
  std::vector<unsigned char> row(static_cast<size_t>(W) * (bits / 8));
  std::string file;
  Buffer b;
  b.written = &file;
  {
    TiffPtr t = open_buffer(b, "w", "write_tiff");
    for (int64_t n = 0; n < N; ++n) {
      TIFFSetField(t.get(), TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(W));
      TIFFSetField(t.get(), TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(H));
      TIFFSetField(t.get(), TIFFTAG_BITSPERSAMPLE, static_cast<uint16_t>(bits));
      TIFFSetField(t.get(), TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(1));
      TIFFSetField(t.get(), TIFFTAG_SAMPLEFORMAT, static_cast<uint16_t>(bits == 32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT));
      TIFFSetField(t.get(), TIFFTAG_PHOTOMETRIC, static_cast<uint16_t>(PHOTOMETRIC_MINISBLACK));
      TIFFSetField(t.get(), TIFFTAG_PLANARCONFIG, static_cast<uint16_t>(PLANARCONFIG_CONTIG));
      TIFFSetField(t.get(), TIFFTAG_COMPRESSION, static_cast<uint16_t>(COMPRESSION_NONE));
      TIFFSetField(t.get(), TIFFTAG_ROWSPERSTRIP, static_cast<uint32_t>(std::max<int64_t>(1, 65536 / static_cast<int64_t>(row.size()))));
      if (N > 1) {
        TIFFSetField(t.get(), TIFFTAG_SUBFILETYPE, static_cast<uint32_t>(FILETYPE_PAGE));
        TIFFSetField(t.get(), TIFFTAG_PAGENUMBER, static_cast<uint16_t>(std::min<int64_t>(n, 65535)), static_cast<uint16_t>(std::min<int64_t>(N, 65535)));
      }
      for (int64_t y = 0; y < H; ++y) {
        const int64_t at = (n * H + y) * W;
        if (dt == DType::Float32) {
          std::memcpy(row.data(), pages.data<float>() + at, row.size());
        } else if (dt == DType::UInt8) {
          std::memcpy(row.data(), pages.data<uint8_t>() + at, row.size());
        } else {
          for (int64_t x = 0; x < W; ++x) {
            const int64_t v = dt == DType::Int64 ? pages.data<int64_t>()[at + x] : pages.data<int32_t>()[at + x];
            TS_CHECK(v >= 0 && v <= 65535, "write_tiff: label ", v, " at page ", n, ", (", y, ", ", x, ") does not fit 16 bits");
            const uint16_t u = static_cast<uint16_t>(v);
            std::memcpy(row.data() + 2 * x, &u, 2);
          }
        }
        TS_CHECK(TIFFWriteScanline(t.get(), row.data(), static_cast<uint32_t>(y), 0) == 1, "write_tiff: ", b.error);
      }
      TS_CHECK(TIFFWriteDirectory(t.get()) == 1, "write_tiff: ", b.error);
    }
  }  // TIFFClose flushes the last directory
  TS_CHECK(b.error.empty(), "write_tiff: ", b.error);
  return file;
}

void write_tiff(const std::string& path, const Tensor& pages) {
  const std::string bytes = encode_tiff(pages);
  write_file_atomic(path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

}  // namespace tessera
