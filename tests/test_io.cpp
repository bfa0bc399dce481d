// .npy and safetensors: files written by NumPy and the safetensors package load with the right
// values; round trips; and every malformed-file case is an Error naming the file, never a crash.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "test_helpers.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using test::data_path;

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("tessera_io_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
  const std::string path = scratch(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// The load must fail with an Error that names the file and contains `what`.
void expect_rejected(const std::function<void(const std::string&)>& load, const std::string& path, const std::string& what) {
  try {
    load(path);
    ADD_FAILURE() << path << ": expected an error containing '" << what << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(fs::path(path).filename().string()), std::string::npos) << "error does not name the file: " << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "expected '" << what << "' in: " << msg;
  }
}

// ---- .npy

TEST(Npy, FilesWrittenByNumpyLoadWithTheirValues) {
  Tensor f32 = load_npy(data_path("npy/f32_2x3.npy"));
  EXPECT_EQ(f32.shape(), (Shape{2, 3}));
  EXPECT_EQ(f32.dtype(), kFloat32);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f32.to_vector<float>()[i], i * 0.5f - 1.f);

  Tensor s = load_npy(data_path("npy/f64_scalar.npy"));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<double>(), 3.25);

  std::vector<int64_t> i64 = load_npy(data_path("npy/i64_5.npy")).to_vector<int64_t>();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(i64[i], 3 - 7 * i);

  Tensor i32 = load_npy(data_path("npy/i32_2x2x3.npy"));
  EXPECT_EQ(i32.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(i32.dtype(), kInt32);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(i32.to_vector<int32_t>()[i], i - 6);

  EXPECT_EQ(load_npy(data_path("npy/u8_4.npy")).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1, 128, 255}));
  Tensor b = load_npy(data_path("npy/bool_2x2.npy"));
  EXPECT_EQ(b.dtype(), kBool);
  EXPECT_EQ(b.to_vector<bool>(), (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(load_npy(data_path("npy/f32_empty_0x4.npy")).shape(), (Shape{0, 4}));
  EXPECT_EQ(load_npy(data_path("npy/f64_v2_3.npy")).to_vector<double>(), (std::vector<double>{0.0, 0.25, 0.5}));
  Tensor f16 = load_npy(data_path("npy/f16_3.npy"));  // NumPy's float16
  EXPECT_EQ(f16.dtype(), kFloat16);
  EXPECT_EQ(f16.to_vector<double>(), (std::vector<double>{0.0, 1.0, 2.0}));
}

TEST(Npy, RoundTripEveryDtypeAndLayout) {
  std::vector<Tensor> ts = {randn({3, 5}), randn({2, 2, 2}, kFloat64), randint(-100, 100, {7}),
                            randint(-5, 5, {2, 3}, kInt32), randint(0, 256, {4, 4}, kUInt8),
                            randint(0, 2, {5}).to(kBool), scalar_tensor(1.5), zeros({0, 3}),
                            randn({3, 2}).to(kFloat16)};
  ts.push_back(randn({4, 3}).t());  // non-contiguous: saved in C order
  for (size_t i = 0; i < ts.size(); ++i) {
    const std::string path = scratch("rt" + std::to_string(i) + ".npy");
    save_npy(path, ts[i]);
    Tensor back = load_npy(path);
    EXPECT_EQ(back.dtype(), ts[i].dtype());
    EXPECT_TRUE(test::equal(back, ts[i])) << i;
    // The header leaves the data 64-byte aligned, as NumPy's does.
    const std::string bytes = bytes_of(path);
    const size_t header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    EXPECT_EQ((10 + header_len) % 64, 0u);
  }
}

TEST(Npy, MalformedFilesAreRejectedWithTheirReason) {
  auto load = [](const std::string& p) { load_npy(p); };
  expect_rejected(load, data_path("npy/fortran_2x3.npy"), "Fortran");
  expect_rejected(load, data_path("npy/bigendian_3.npy"), "big-endian");
  expect_rejected(load, data_path("npy/u16_3.npy"), "unsupported dtype");
  expect_rejected(load, scratch("does_not_exist.npy"), "cannot open");

  const std::string good = bytes_of(data_path("npy/f32_2x3.npy"));
  expect_rejected(load, write_bytes("truncated_data.npy", good.substr(0, good.size() - 3)), "truncated");
  expect_rejected(load, write_bytes("tiny.npy", good.substr(0, 7)), "truncated");
  expect_rejected(load, write_bytes("trailing.npy", good + "xyz"), "unexpected bytes");
  // Found by fuzz_npy: an empty array whose other dimensions overflow the strides (UB before).
  std::string header = "{'descr': '|b1', 'fortran_order': False, 'shape': (0, 21111111, 21111111111111), }";
  header += std::string(64 - (10 + header.size() + 1) % 64, ' ') + "\n";
  const std::string overflow = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size() & 0xff) +
                               static_cast<char>(header.size() >> 8) + header;
  expect_rejected(load, write_bytes("stride_overflow.npy", overflow), "strides overflow");
  std::string bad_magic = good;
  bad_magic[1] = 'X';
  expect_rejected(load, write_bytes("bad_magic.npy", bad_magic), "magic");
  std::string long_header = good;
  long_header[8] = '\xff';
  long_header[9] = '\x7f';
  expect_rejected(load, write_bytes("header_past_end.npy", long_header), "past the end");
  std::string version = good;
  version[6] = 9;
  expect_rejected(load, write_bytes("version9.npy", version), "version");

  // Headers with a hostile shape or broken syntax, padded to the original header length.
  const size_t hlen = static_cast<unsigned char>(good[8]) | (static_cast<unsigned char>(good[9]) << 8);
  auto with_header = [&](const std::string& name, std::string header) {
    header.resize(hlen - 1, ' ');
    header += '\n';
    return write_bytes(name, good.substr(0, 10) + header + good.substr(10 + hlen));
  };
  expect_rejected(load, with_header("huge_shape.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000000,), }"),
                  "larger than the file");
  expect_rejected(load, with_header("overflow_shape.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }"),
                  "larger than the file");
  expect_rejected(load, with_header("negative_shape.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }"),
                  "non-negative");
  expect_rejected(load, with_header("no_shape.npy", "{'descr': '<f4', 'fortran_order': False, }"), "required");
  expect_rejected(load, with_header("garbage.npy", "not a dict at all"), "malformed");
  expect_rejected(load, with_header("unterminated.npy", "{'descr: <f4"), "malformed");
}

TEST(Npy, SaveIsAtomicAndReportsFailures) {
  const std::string path = scratch("atomic.npy");
  save_npy(path, arange(4, kFloat32));
  EXPECT_THROW(save_npy(scratch("no_such_dir/x.npy"), arange(4, kFloat32)), Error);
  // Overwriting replaces the file whole; no temporary file is left beside it.
  save_npy(path, arange(6, kFloat64));
  EXPECT_EQ(load_npy(path).numel(), 6);
  for (const auto& entry : fs::directory_iterator(fs::path(path).parent_path()))
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path();
}

// ---- safetensors

std::string safetensors_blob(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

TEST(Safetensors, FileWrittenByThePythonPackageLoads) {
  SafetensorsFile f = load_safetensors(data_path("safetensors/numpy_written.safetensors"));
  EXPECT_EQ(f.metadata.at("source"), "fixture");
  ASSERT_EQ(f.tensors.size(), 6u);
  Tensor w = f.tensors.at("layer1.0.conv1.weight");
  EXPECT_EQ(w.shape(), (Shape{2, 3, 2, 2}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(w.to_vector<float>()[i], i * 0.25f - 3.f);
  EXPECT_EQ(f.tensors.at("bn.running_var").to_vector<double>(), (std::vector<double>{0.5, 1.5, 2.5}));
  EXPECT_EQ(f.tensors.at("bn.num_batches_tracked").item<int64_t>(), 7);
  EXPECT_EQ(f.tensors.at("ids").to_vector<int32_t>(), (std::vector<int32_t>{0, 3, 6, 9}));
  EXPECT_EQ(f.tensors.at("mask").to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(f.tensors.at("flags").to_vector<bool>(), (std::vector<bool>{true, false}));
}

// F16 and BF16 written by safetensors' torch API (scripts/make_safetensors_fixture.py): float32 on
// load, exactly, with subnormals, infinities, NaN and signed zeros; and into a model.
TEST(Safetensors, HalfPrecisionFilesLoadAsFloat32) {
  SafetensorsFile f = load_safetensors(data_path("safetensors/half_written.safetensors"));
  ASSERT_EQ(f.tensors.size(), 4u);
  for (const auto& [name, t] : f.tensors) EXPECT_EQ(t.dtype(), kFloat32) << name;
  const Tensor w = f.tensors.at("conv.weight");
  EXPECT_EQ(w.shape(), (Shape{2, 3, 2, 2}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(w.to_vector<float>()[static_cast<size_t>(i)], i / 8.0f - 1.5f) << i;
  EXPECT_EQ(f.tensors.at("conv.bias").to_vector<float>(), (std::vector<float>{-0.25f, 0.5f}));
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> f16 = f.tensors.at("f16_specials").to_vector<float>();
  const std::vector<float> want16 = {65504.f, -65504.f, std::ldexp(1.f, -24), -std::ldexp(1.f, -24), std::ldexp(1.f, -14),
                                     1023 * std::ldexp(1.f, -24), -0.f, inf, -inf};
  ASSERT_EQ(f16.size(), want16.size() + 1);
  for (size_t i = 0; i < want16.size(); ++i) {
    EXPECT_EQ(f16[i], want16[i]) << i;
    EXPECT_EQ(std::signbit(f16[i]), std::signbit(want16[i])) << i;
  }
  EXPECT_TRUE(std::isnan(f16.back()));
  const std::vector<float> bf = f.tensors.at("bf16_specials").to_vector<float>();
  const std::vector<float> want_bf = {1.5f * std::ldexp(1.f, 127), -std::ldexp(1.f, -133), std::ldexp(1.f, -126), 1.f + std::ldexp(1.f, -7),
                                      -0.f, inf};
  ASSERT_EQ(bf.size(), want_bf.size() + 1);
  for (size_t i = 0; i < want_bf.size(); ++i) {
    EXPECT_EQ(bf[i], want_bf[i]) << i;
    EXPECT_EQ(std::signbit(bf[i]), std::signbit(want_bf[i])) << i;
  }
  EXPECT_TRUE(std::isnan(bf.back()));
  // A model takes them like any float32 state.
  Conv2d conv(3, 2, 2);
  conv.load_state_dict({{"weight", f.tensors.at("conv.weight")}, {"bias", f.tensors.at("conv.bias")}});
  EXPECT_TRUE(test::equal(conv.weight.detach(), w));
  EXPECT_EQ(conv.bias.detach().to_vector<float>(), (std::vector<float>{-0.25f, 0.5f}));
}

TEST(Safetensors, RoundTrip) {
  std::map<std::string, Tensor> ts = {{"a.weight", randn({3, 4})}, {"a.bias", randn({4}, kFloat64)},
                                      {"steps", scalar_tensor(12, kInt64)}, {"ids", randint(0, 9, {5}, kInt32)},
                                      {"bytes", randint(0, 256, {3}, kUInt8)}, {"mask", randint(0, 2, {2, 2}).to(kBool)},
                                      {"empty", zeros({0, 2})}, {"strided", randn({3, 2}).t()}};
  const std::string path = scratch("rt.safetensors");
  save_safetensors(path, ts, {{"epoch", "3"}});
  SafetensorsFile back = load_safetensors(path);
  EXPECT_EQ(back.metadata.at("epoch"), "3");
  ASSERT_EQ(back.tensors.size(), ts.size());
  for (const auto& [k, t] : ts) {
    EXPECT_EQ(back.tensors.at(k).dtype(), t.dtype()) << k;
    EXPECT_TRUE(test::equal(back.tensors.at(k), t)) << k;
  }
  const std::string bytes = bytes_of(path);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ((8 + header_len) % 8, 0u);  // header padded with spaces: the data starts 8-byte aligned
  EXPECT_THROW(save_safetensors(path, {{"__metadata__", zeros({1})}}), Error);
}

TEST(Safetensors, MalformedFilesAreRejectedWithTheirReason) {
  auto load = [](const std::string& p) { load_safetensors(p); };
  const std::string f32x2 = std::string("\0\0\x80\x3f\0\0\0\x40", 8);  // 1.0f, 2.0f
  auto entry = [](const std::string& dtype, const std::string& shape, const std::string& offs) {
    return "{\"t\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offs + "}}";
  };
  // A valid file first, so that each failure below is due to its one defect.
  const std::string valid = safetensors_blob(entry("F32", "[2]", "[0,8]"), f32x2);
  EXPECT_EQ(load_safetensors(write_bytes("valid.safetensors", valid)).tensors.at("t").to_vector<float>(),
            (std::vector<float>{1.f, 2.f}));

  expect_rejected(load, write_bytes("short.safetensors", "abc"), "truncated");
  expect_rejected(load, write_bytes("len_past_end.safetensors", valid.substr(0, 30)), "past the end");
  expect_rejected(load, write_bytes("not_json.safetensors", safetensors_blob("{\"t\": [1, 2", "")), "not valid JSON");
  expect_rejected(load, write_bytes("not_object.safetensors", safetensors_blob("[1, 2, 3]", "")), "JSON object");
  expect_rejected(load, write_bytes("offsets_out.safetensors", safetensors_blob(entry("F32", "[2]", "[0,16]"), f32x2)),
                  "outside");
  expect_rejected(load, write_bytes("offsets_reversed.safetensors", safetensors_blob(entry("F32", "[2]", "[8,0]"), f32x2)),
                  "outside");
  expect_rejected(load, write_bytes("size_mismatch.safetensors", safetensors_blob(entry("F32", "[3]", "[0,8]"), f32x2)),
                  "cover");
  expect_rejected(load, write_bytes("f8.safetensors", safetensors_blob(entry("F8_E4M3", "[8]", "[0,8]"), f32x2)),
                  "unsupported dtype");
  // Half precision: two bytes an element, counted as stored (not as the float32 it becomes).
  expect_rejected(load, write_bytes("f16_size.safetensors", safetensors_blob(entry("F16", "[2]", "[0,8]"), f32x2)),
                  "(4 bytes) but data_offsets cover 8");
  expect_rejected(load, write_bytes("bf16_size.safetensors", safetensors_blob(entry("BF16", "[8]", "[0,8]"), f32x2)),
                  "(16 bytes) but data_offsets cover 8");
  EXPECT_EQ(load_safetensors(write_bytes("f16_ok.safetensors", safetensors_blob(entry("F16", "[4]", "[0,8]"), f32x2)))
                .tensors.at("t").dtype(), kFloat32);
  expect_rejected(load, write_bytes("neg_shape.safetensors", safetensors_blob(entry("F32", "[-2]", "[0,8]"), f32x2)),
                  "non-negative");
  expect_rejected(load, write_bytes("huge_shape.safetensors",
                                    safetensors_blob(entry("F32", "[4294967296,4294967296]", "[0,8]"), f32x2)),
                  "larger than the file");
  expect_rejected(load, write_bytes("missing_key.safetensors", safetensors_blob("{\"t\":{\"dtype\":\"F32\"}}", "")),
                  "needs dtype");
  expect_rejected(load, write_bytes("bad_metadata.safetensors", safetensors_blob("{\"__metadata__\":{\"a\":1}}", "")),
                  "must be a string");
  std::string huge_len = valid;
  huge_len[7] = '\x7f';
  expect_rejected(load, write_bytes("huge_len.safetensors", huge_len), "past the end");
  expect_rejected(load, scratch("missing.safetensors"), "cannot open");
}

}  // namespace
}  // namespace tessera
