// .npy reading and writing. The header is a Python dict literal; this parser accepts exactly the
// keys NumPy writes ('descr', 'fortran_order', 'shape') and rejects everything else.
#include "core/npy.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>

#include "core/file_io.h"
#include "core/view.h"

namespace tessera {

namespace {

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  bool has_descr = false, has_order = false, has_shape = false;
  Shape shape;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& name) : s_(text), name_(name) {}

  NpyHeader parse() {
    NpyHeader h;
    skip_ws();
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') {
        ++i_;
        break;
      }
      const std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        h.descr = parse_string();
        h.has_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
        h.has_order = true;
      } else if (key == "shape") {
        h.shape = parse_shape();
        h.has_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') ++i_;
    }
    TS_CHECK(h.has_descr && h.has_order && h.has_shape, name_,
             ": malformed .npy header: 'descr', 'fortran_order' and 'shape' are all required");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    TS_ERROR(name_, ": malformed .npy header (", what, ") in: ", s_);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string parse_string() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != q) out += s_[i_++];
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  bool parse_bool() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  Shape parse_shape() {
    expect('(');
    Shape shape;
    while (true) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        return shape;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("shape entries must be non-negative integers");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("shape entry too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      shape.push_back(v);
      skip_ws();
      if (peek() == ',') ++i_;
      else if (peek() != ')') fail("expected ',' or ')' in shape");
    }
  }

  const std::string& s_;
  const std::string& name_;
  size_t i_ = 0;
};

DType dtype_from_descr(const std::string& descr, const std::string& name) {
  TS_CHECK(!descr.empty(), name, ": empty dtype descriptor");
  const char order = descr[0];
  const std::string kind = descr.substr(1);
  TS_CHECK(order != '>', name, ": big-endian data ('", descr, "') is not supported; save it little-endian");
  TS_CHECK(order == '<' || order == '|' || order == '=', name, ": unsupported dtype descriptor '", descr, "'");
  if (kind == "f4") return DType::Float32;
  if (kind == "f8") return DType::Float64;
  if (kind == "f2") return DType::Float16;
  if (kind == "i8") return DType::Int64;
  if (kind == "i4") return DType::Int32;
  if (kind == "u1") return DType::UInt8;
  if (kind == "b1") return DType::Bool;
  TS_ERROR(name, ": unsupported dtype '", descr, "' (tessera reads f2, f4, f8, i8, i4, u1 and b1)");
}

const char* descr_of(DType d) {
  switch (d) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Int64: return "<i8";
    case DType::Int32: return "<i4";
    case DType::UInt8: return "|u1";
    case DType::Bool: return "|b1";
    case DType::Float16: return "<f2";
    case DType::BFloat16: break;  // NumPy has no bfloat16
  }
  return "";
}

uint32_t read_le(const char* p, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

Tensor parse_npy(const char* data, size_t size, const std::string& name) {
  static const char kMagic[] = "\x93NUMPY";
  TS_CHECK(size >= 10, name, ": truncated .npy file (", size, " bytes, a header needs at least 10)");
  TS_CHECK(std::memcmp(data, kMagic, 6) == 0, name, ": not a .npy file (wrong magic bytes)");
  const int major = static_cast<unsigned char>(data[6]);
  TS_CHECK(major >= 1 && major <= 3, name, ": unsupported .npy format version ", major);
  const int len_bytes = major == 1 ? 2 : 4;
  const size_t preamble = 8 + static_cast<size_t>(len_bytes);
  TS_CHECK(size >= preamble, name, ": truncated .npy file (no header length)");
  const size_t header_len = read_le(data + 8, len_bytes);
  TS_CHECK(header_len <= size - preamble, name, ": header length ", header_len, " points past the end of the ",
           size, "-byte file");
  const std::string header(data + preamble, header_len);
  NpyHeader h = HeaderParser(header, name).parse();
  const DType dtype = dtype_from_descr(h.descr, name);
  TS_CHECK(!h.fortran_order, name, ": Fortran-order arrays are not supported; save with np.ascontiguousarray");

  const size_t data_offset = preamble + header_len;
  const size_t available = size - data_offset;
  // Overflow-safe element count: stop as soon as it exceeds what the file could hold.
  uint64_t numel = 1;
  for (int64_t s : h.shape) {
    if (s == 0) {
      numel = 0;
      break;
    }
    TS_CHECK(numel <= available / static_cast<uint64_t>(s), name, ": shape ", shape_str(h.shape),
             " is larger than the file's ", available, " data bytes (truncated file?)");
    numel *= static_cast<uint64_t>(s);
  }
  const uint64_t needed = numel * element_size(dtype);
  TS_CHECK(needed <= available, name, ": truncated data: shape ", shape_str(h.shape), " of ", dtype_name(dtype),
           " needs ", needed, " bytes, the file has ", available);
  TS_CHECK(needed == available, name, ": ", available - needed, " unexpected bytes after the array data");

  // An empty array's other dimensions still make strides: they must fit in 64 bits.
  int64_t span = 1;
  for (int64_t s : h.shape)
    TS_CHECK(!__builtin_mul_overflow(span, std::max<int64_t>(s, 1), &span), name, ": shape ", shape_str(h.shape),
             " is too large: its strides overflow 64 bits");
  Tensor t = raw::empty(h.shape, dtype, kCPU);
  if (needed > 0) std::memcpy(t.data_ptr(), data + data_offset, needed);
  if (dtype == DType::Bool) {  // any byte other than 0/1 would be undefined behaviour as a bool
    auto* b = static_cast<unsigned char*>(t.data_ptr());
    for (uint64_t i = 0; i < numel; ++i) b[i] = b[i] != 0;
  }
  return t;
}

Tensor load_npy(const std::string& path) {
  std::vector<char> bytes = read_file(path);
  return parse_npy(bytes.data(), bytes.size(), path);
}

void save_npy(const std::string& path, const Tensor& t_in) {
  TS_CHECK(t_in.defined(), path, ": save_npy of an undefined tensor");
  TS_CHECK(t_in.dtype() != DType::BFloat16, path, ": NumPy has no bfloat16 dtype; save it with to(kFloat32) ",
           "(exact) or as safetensors (BF16)");
  Tensor t = raw::contiguous(raw::to(t_in, kCPU));
  std::string shape = "(";
  for (int64_t d = 0; d < t.dim(); ++d) shape += std::to_string(t.size(d)) + (t.dim() == 1 ? ",)" : d + 1 < t.dim() ? ", " : ")");
  if (t.dim() == 0) shape += ")";
  std::string header = std::string("{'descr': '") + descr_of(t.dtype()) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so that the data starts on a 64-byte boundary, as NumPy does; the header ends in '\n'.
  const size_t unpadded = 10 + header.size() + 1;
  header += std::string((64 - unpadded % 64) % 64, ' ') + "\n";
  TS_CHECK(header.size() < 65536, path, ": .npy header too long");
  write_file_atomic(path, [&](std::ostream& out) {
    out.write("\x93NUMPY\x01\x00", 8);
    const char len[2] = {static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
    out.write(len, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  });
}

}  // namespace tessera
