// safetensors reading and writing; every offset is checked against the file before it is used.
#include "core/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "core/view.h"

namespace tessera {

namespace {

using json = nlohmann::json;

DType dtype_from_name(const std::string& s, const std::string& file, const std::string& tensor) {
  if (s == "F32") return DType::Float32;
  if (s == "F64") return DType::Float64;
  if (s == "F16") return DType::Float16;
  if (s == "BF16") return DType::BFloat16;
  if (s == "I64") return DType::Int64;
  if (s == "I32") return DType::Int32;
  if (s == "U8") return DType::UInt8;
  if (s == "BOOL") return DType::Bool;
  TS_ERROR(file, ": tensor '", tensor, "' has unsupported dtype '", s,
           "' (tessera reads F32, F64, F16, BF16, I64, I32, U8 and BOOL)");
}

const char* name_of(DType d) {
  switch (d) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::Int32: return "I32";
    case DType::UInt8: return "U8";
    case DType::Bool: return "BOOL";
    case DType::BFloat16: return "BF16";
    case DType::Float16: return "F16";
  }
  return "";
}

uint64_t get_u64(const json& j, const std::string& file, const std::string& what) {
  TS_CHECK(j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0), file, ": ", what,
           " must be a non-negative integer, got ", j.dump());
  return j.get<uint64_t>();
}

}  // namespace

SafetensorsFile parse_safetensors(const char* data, size_t size, const std::string& name, HalfLoad halves) {
  TS_CHECK(size >= 8, name, ": truncated safetensors file (", size, " bytes; the header length alone is 8)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(data[i]);
  TS_CHECK(header_len <= size - 8, name, ": header length ", header_len, " points past the end of the ", size,
           "-byte file (not a safetensors file, or truncated)");
  TS_CHECK(header_len <= (uint64_t{100} << 20), name, ": header length ", header_len, " exceeds 100 MiB");
  json header;
  try {
    header = json::parse(data + 8, data + 8 + header_len);
  } catch (const json::exception& e) {
    TS_ERROR(name, ": the header is not valid JSON: ", e.what());
  }
  TS_CHECK(header.is_object(), name, ": the header must be a JSON object");

  const char* body = data + 8 + header_len;
  const uint64_t body_size = size - 8 - header_len;
  SafetensorsFile out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "__metadata__") {
      TS_CHECK(v.is_object(), name, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        TS_CHECK(m.value().is_string(), name, ": __metadata__ value of '", m.key(), "' must be a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    TS_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"), name,
             ": entry '", key, "' needs dtype, shape and data_offsets");
    TS_CHECK(v["dtype"].is_string(), name, ": dtype of '", key, "' must be a string");
    const DType dtype = dtype_from_name(v["dtype"].get<std::string>(), name, key);
    TS_CHECK(v["shape"].is_array(), name, ": shape of '", key, "' must be an array");
    Shape shape;
    uint64_t numel = 1;
    for (const json& s : v["shape"]) {
      const uint64_t d = get_u64(s, name, "a shape entry of '" + key + "'");
      TS_CHECK(d <= (uint64_t{1} << 48), name, ": shape entry ", d, " of '", key, "' is implausibly large");
      shape.push_back(static_cast<int64_t>(d));
      numel = d == 0 ? 0 : numel;
      if (numel != 0) {
        TS_CHECK(numel <= body_size / d, name, ": shape of '", key, "' is larger than the file's data");
        numel *= d;
      }
    }
    const json& offs = v["data_offsets"];
    TS_CHECK(offs.is_array() && offs.size() == 2, name, ": data_offsets of '", key, "' must be [begin, end]");
    const uint64_t begin = get_u64(offs[0], name, "data_offsets of '" + key + "'");
    const uint64_t end = get_u64(offs[1], name, "data_offsets of '" + key + "'");
    TS_CHECK(begin <= end && end <= body_size, name, ": data_offsets [", begin, ", ", end, "] of '", key,
             "' point outside the ", body_size, "-byte data section");
    const uint64_t nbytes = numel * element_size(dtype);
    TS_CHECK(end - begin == nbytes, name, ": '", key, "' has shape ", shape_str(shape), " of ", v["dtype"].get<std::string>(),
             " (", nbytes, " bytes) but data_offsets cover ", end - begin, " bytes");
    int64_t span = 1;  // an empty tensor's other dimensions still make strides
    for (int64_t d : shape)
      TS_CHECK(!__builtin_mul_overflow(span, std::max<int64_t>(d, 1), &span), name, ": shape ", shape_str(shape), " of '", key,
               "' is too large: its strides overflow 64 bits");
    Tensor t = raw::empty(shape, dtype, kCPU);
    if (nbytes > 0) {  // little-endian, as the format and this machine
      std::memcpy(t.data_ptr(), body + begin, nbytes);
    }
    if (dtype == DType::Bool) {
      auto* b = static_cast<unsigned char*>(t.data_ptr());
      for (uint64_t i = 0; i < numel; ++i) b[i] = b[i] != 0;
    }
    if (is_half(dtype) && halves == HalfLoad::WidenToFloat32) t = raw::to(t, DType::Float32);  // exact
    out.tensors.emplace(key, std::move(t));
  }
  return out;
}

SafetensorsFile load_safetensors(const std::string& path, HalfLoad halves) {
  std::vector<char> bytes = read_file(path);
  return parse_safetensors(bytes.data(), bytes.size(), path, halves);
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> host;
  uint64_t offset = 0;
  for (const auto& [key, t] : tensors) {
    TS_CHECK(key != "__metadata__", path, ": '__metadata__' is reserved and cannot name a tensor");
    TS_CHECK(t.defined(), path, ": tensor '", key, "' is undefined");
    Tensor h = raw::contiguous(raw::to(t, kCPU));
    header[key] = {{"dtype", name_of(h.dtype())}, {"shape", h.shape()}, {"data_offsets", {offset, offset + h.nbytes()}}};
    offset += h.nbytes();
    host.push_back(std::move(h));
  }
  std::string text = header.dump();
  text += std::string((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned
  write_file_atomic(path, [&](std::ostream& out) {
    char len[8];
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const Tensor& h : host) out.write(static_cast<const char*>(h.data_ptr()), static_cast<std::streamsize>(h.nbytes()));
  });
}

}  // namespace tessera
