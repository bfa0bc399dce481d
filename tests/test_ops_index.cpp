// Joining, splitting, indexing, sorting, scanning and views in the op table.
#include <limits>

#include "kernels/index.h"
#include "kernels/sort.h"
#include "op_table.h"

namespace tessera::test {
namespace {

using V = const std::vector<Tensor>&;
using H = const std::vector<Host>&;

// out[...] = x[... index[i] ...] along dim (1-D index).
Host index_select_ref(const Host& x, int64_t dim, const Host& index) {
  Shape shape = x.shape;
  shape[dim] = index.numel();
  Host r = host_zeros(shape);
  for (int64_t i = 0; i < r.numel(); ++i) {
    Shape idx = unravel(i, shape);
    idx[dim] = static_cast<int64_t>(index.v[idx[dim]]);
    r.v[i] = x.at(idx);
  }
  return r;
}

Host gather_ref(const Host& x, int64_t dim, const Host& index) {
  Host r = host_zeros(index.shape);
  for (int64_t i = 0; i < r.numel(); ++i) {
    Shape idx = unravel(i, index.shape);
    idx[dim] = static_cast<int64_t>(index.v[i]);
    r.v[i] = x.at(idx);
  }
  return r;
}

Host scatter_add_ref(const Host& self, int64_t dim, const Host& index, const Host& src) {
  Host r = self;
  for (int64_t i = 0; i < index.numel(); ++i) {
    Shape idx = unravel(i, index.shape);
    const double v = src.at(idx);
    idx[dim] = static_cast<int64_t>(index.v[i]);
    r.at(idx) += v;
  }
  return r;
}

Host permute_ref(const Host& x, const Shape& dims) {
  Shape shape;
  for (int64_t d : dims) shape.push_back(x.shape[d]);
  Host r = host_zeros(shape);
  for (int64_t i = 0; i < r.numel(); ++i) {
    Shape out_idx = unravel(i, shape), in_idx(dims.size());
    for (size_t k = 0; k < dims.size(); ++k) in_idx[dims[k]] = out_idx[k];
    r.v[i] = x.at(in_idx);
  }
  return r;
}

Host reshaped(Host h, Shape shape) {
  h.shape = std::move(shape);
  return h;
}

std::vector<OpCase> cases() {
  std::vector<OpCase> c;
  // ---- cat / stack / split / chunk
  c.push_back({"cat_dim0", {{{2, 3}}, {{1, 3}}, {{3, 3}}}, [](V x) { return cat({x[0], x[1], x[2]}, 0); },
               [](H h) { return ref::cat({h[0], h[1], h[2]}, 0); }});
  c.push_back({"cat_dim1", {{{2, 3}}, {{2, 1}}}, [](V x) { return cat({x[0], x[1]}, -1); },
               [](H h) { return ref::cat({h[0], h[1]}, 1); }});
  c.push_back({"cat_promotes", {{{2, 2}, Kind::Int}, {{2, 2}}}, [](V x) { return cat({x[0], x[1]}, 0); },
               [](H h) { return ref::cat({h[0], h[1]}, 0); }});
  c.push_back({"stack_dim1", {{{2, 3}}, {{2, 3}}}, [](V x) { return stack({x[0], x[1]}, 1); },
               [](H h) {
                 Host a = reshaped(h[0], {2, 1, 3}), b = reshaped(h[1], {2, 1, 3});
                 return ref::cat({a, b}, 1);
               }});
  c.push_back({"split_second_piece", {{{3, 5}}}, [](V x) { return split(x[0], 2, 1)[1]; },
               [](H h) { return ref::along(h[0], 1, [](const std::vector<double>& v) { return std::vector<double>{v[2], v[3]}; }, 2); }});
  c.push_back({"split_sizes_last", {{{6, 2}}}, [](V x) { return split(x[0], Shape{1, 2, 3}, 0)[2]; },
               [](H h) { return ref::along(h[0], 0, [](const std::vector<double>& v) { return std::vector<double>{v[3], v[4], v[5]}; }, 3); }});
  c.push_back({"chunk_uneven", {{{7, 2}}}, [](V x) { return chunk(x[0], 3, 0)[2]; },
               [](H h) { return ref::along(h[0], 0, [](const std::vector<double>& v) { return std::vector<double>{v[6]}; }, 1); }});
  c.push_back({"split_pieces_sum_back", {{{4, 6}}}, [](V x) {
                 std::vector<Tensor> p = split(x[0], 3, 1);
                 return p[0] * 2.0 + p[1];
               },
               [](H h) {
                 return ref::along(h[0], 1, [](const std::vector<double>& v) {
                   return std::vector<double>{2 * v[0] + v[3], 2 * v[1] + v[4], 2 * v[2] + v[5]};
                 }, 3);
               }});
  // ---- index_select / index_add / gather / scatter_add (repeated indices on purpose)
  c.push_back({"index_select_dim1", {{{3, 5}}, {{7}, Kind::Index, 5}}, [](V x) { return index_select(x[0], 1, x[1]); },
               [](H h) { return index_select_ref(h[0], 1, h[1]); }});
  c.push_back({"index_select_dim0_3d", {{{4, 2, 3}}, {{6}, Kind::Index, 4}}, [](V x) { return index_select(x[0], 0, x[1]); },
               [](H h) { return index_select_ref(h[0], 0, h[1]); }});
  c.push_back({"index_select_int32_index", {{{3, 5}}, {{4}, Kind::Index, 3}}, [](V x) { return index_select(x[0], 0, x[1].to(kInt32)); },
               [](H h) { return index_select_ref(h[0], 0, h[1]); }});
  c.push_back({"index_add", {{{4, 3}}, {{6}, Kind::Index, 4}, {{6, 3}}}, [](V x) { return index_add(x[0], 0, x[1], x[2]); },
               [](H h) {
                 Host r = h[0];
                 for (int64_t i = 0; i < 6; ++i)
                   for (int64_t j = 0; j < 3; ++j) r.at({static_cast<int64_t>(h[1].v[i]), j}) += h[2].at({i, j});
                 return r;
               }});
  c.push_back({"gather_dim1", {{{3, 5}}, {{3, 4}, Kind::Index, 5}}, [](V x) { return gather(x[0], 1, x[1]); },
               [](H h) { return gather_ref(h[0], 1, h[1]); }});
  c.push_back({"gather_dim0_smaller_index", {{{4, 3}}, {{2, 2}, Kind::Index, 4}}, [](V x) { return gather(x[0], 0, x[1]); },
               [](H h) { return gather_ref(h[0], 0, h[1]); }});
  c.push_back({"scatter_add_dim0", {{{3, 4}}, {{5, 4}, Kind::Index, 3}, {{5, 4}}},
               [](V x) { return scatter_add(x[0], 0, x[1], x[2]); }, [](H h) { return scatter_add_ref(h[0], 0, h[1], h[2]); }});
  c.push_back({"scatter_add_dim1_larger_src", {{{3, 4}}, {{2, 3}, Kind::Index, 4}, {{3, 5}}},
               [](V x) { return scatter_add(x[0], 1, x[1], x[2]); }, [](H h) { return scatter_add_ref(h[0], 1, h[1], h[2]); }});
  c.push_back({"nonzero", {{{3, 4}, Kind::Ties}}, [](V x) { return nonzero(x[0]); },
               [](H h) {
                 Host r{{0, 2}, {}};
                 for (int64_t i = 0; i < h[0].numel(); ++i)
                   if (h[0].v[i] != 0) {
                     Shape idx = unravel(i, h[0].shape);
                     r.v.push_back(static_cast<double>(idx[0]));
                     r.v.push_back(static_cast<double>(idx[1]));
                     r.shape[0] += 1;
                   }
                 return r;
               }, false});
  c.push_back({"nonzero_large", {{{300, 301}, Kind::Ties}}, [](V x) { return nonzero(x[0]).select(1, 1); },
               [](H h) {
                 Host r{{0}, {}};
                 for (int64_t i = 0; i < h[0].numel(); ++i)
                   if (h[0].v[i] != 0) {
                     r.v.push_back(static_cast<double>(i % 301));
                     r.shape[0] += 1;
                   }
                 return r;
               }, false});
  // ---- sort / argsort / topk (ties: stable order)
  auto sorted_values = [](bool desc) {
    return [desc](const std::vector<double>& v) {
      std::vector<double> r;
      for (int64_t i : ref::sort_order(v, desc)) r.push_back(v[i]);
      return r;
    };
  };
  auto sorted_indices = [](bool desc) {
    return [desc](const std::vector<double>& v) {
      std::vector<double> r;
      for (int64_t i : ref::sort_order(v, desc)) r.push_back(static_cast<double>(i));
      return r;
    };
  };
  c.push_back({"sort_values", {{{3, 6}}}, [](V x) { return sort(x[0], 1).first; },
               [=](H h) { return ref::along(h[0], 1, sorted_values(false)); }});
  c.push_back({"sort_desc_dim0_values", {{{5, 3}}}, [](V x) { return sort(x[0], 0, true).first; },
               [=](H h) { return ref::along(h[0], 0, sorted_values(true)); }});
  c.push_back({"sort_stable_indices", {{{3, 8}, Kind::Ties}}, [](V x) { return sort(x[0], 1).second; },
               [=](H h) { return ref::along(h[0], 1, sorted_indices(false)); }, false});
  c.push_back({"sort_desc_stable_indices", {{{3, 8}, Kind::Ties}}, [](V x) { return sort(x[0], -1, true).second; },
               [=](H h) { return ref::along(h[0], 1, sorted_indices(true)); }, false});
  c.push_back({"argsort_int", {{{2, 9}, Kind::Int}}, [](V x) { return argsort(x[0], 1); },
               [=](H h) { return ref::along(h[0], 1, sorted_indices(false)); }, false});
  c.push_back({"sort_long_row", {{{1, 5000}}}, [](V x) { return sort(x[0], 1, true).second; },
               [=](H h) { return ref::along(h[0], 1, sorted_indices(true)); }, false});
  c.push_back({"topk_values", {{{3, 7}}}, [](V x) { return topk(x[0], 3, 1).first; },
               [=](H h) {
                 return ref::along(h[0], 1, [&](const std::vector<double>& v) {
                   std::vector<double> s = sorted_values(true)(v);
                   return std::vector<double>(s.begin(), s.begin() + 3);
                 }, 3);
               }});
  c.push_back({"topk_smallest_indices_ties", {{{4, 6}, Kind::Ties}}, [](V x) { return topk(x[0], 2, 1, false).second; },
               [=](H h) {
                 return ref::along(h[0], 1, [&](const std::vector<double>& v) {
                   std::vector<double> s = sorted_indices(false)(v);
                   return std::vector<double>(s.begin(), s.begin() + 2);
                 }, 2);
               }, false});
  // ---- cumsum
  auto prefix = [](const std::vector<double>& v) {
    std::vector<double> r(v.size());
    double acc = 0;
    for (size_t i = 0; i < v.size(); ++i) r[i] = acc += v[i];
    return r;
  };
  c.push_back({"cumsum_dim1", {{{3, 5}}}, [](V x) { return cumsum(x[0], 1); }, [=](H h) { return ref::along(h[0], 1, prefix); }});
  c.push_back({"cumsum_dim0_3d", {{{4, 2, 3}}}, [](V x) { return cumsum(x[0], 0); }, [=](H h) { return ref::along(h[0], 0, prefix); }});
  c.push_back({"cumsum_int", {{{3, 5}, Kind::Int}}, [](V x) { return cumsum(x[0], -1); }, [=](H h) { return ref::along(h[0], 1, prefix); }, false});
  // ---- views under autograd
  c.push_back({"permute", {{{2, 3, 4}}}, [](V x) { return x[0].permute({2, 0, 1}).contiguous(); },
               [](H h) { return permute_ref(h[0], {2, 0, 1}); }});
  c.push_back({"transpose_then_reshape", {{{3, 4}}}, [](V x) { return x[0].t().reshape({2, 6}); },
               [](H h) { return reshaped(permute_ref(h[0], {1, 0}), {2, 6}); }});
  c.push_back({"narrow", {{{4, 5}}}, [](V x) { return x[0].narrow(1, 1, 3) * 2.0; },
               [](H h) { return ref::along(h[0], 1, [](const std::vector<double>& v) { return std::vector<double>{2 * v[1], 2 * v[2], 2 * v[3]}; }, 3); }});
  c.push_back({"slice_step", {{{7, 2}}}, [](V x) { return x[0].slice(0, 1, 7, 2); },
               [](H h) { return ref::along(h[0], 0, [](const std::vector<double>& v) { return std::vector<double>{v[1], v[3], v[5]}; }, 3); }});
  c.push_back({"select", {{{3, 4}}}, [](V x) { return x[0].select(1, 2); },
               [](H h) {
                 Host r = host_zeros({3});
                 for (int64_t i = 0; i < 3; ++i) r.v[i] = h[0].at({i, 2});
                 return r;
               }});
  c.push_back({"expand_then_mul", {{{3, 1}}, {{3, 4}}}, [](V x) { return x[0].expand({3, 4}) * x[1]; },
               [](H h) { return ref::zip(h[0], h[1], [](double a, double b) { return a * b; }); }});
  c.push_back({"unsqueeze_squeeze_flatten", {{{2, 3}}}, [](V x) { return x[0].unsqueeze(0).unsqueeze(3).squeeze(0).flatten(); },
               [](H h) { return reshaped(h[0], {6}); }});
  c.push_back({"to_dtype_and_back", {{{2, 3}}}, [](V x) { return (x[0].to(kFloat64) * 3.0).to(x[0].dtype()); },
               [](H h) { return ref::map(h[0], [](double v) { return 3 * v; }); }});
  c.push_back({"clone", {{{2, 3}}}, [](V x) { return x[0].clone() * x[0]; }, [](H h) { return ref::map(h[0], [](double v) { return v * v; }); }});
  // The cases that take bfloat16 and float16 (the others must refuse them: OpHalfTest).
  take_halves(c, {
      "cat_dim0", "cat_dim1", "cat_promotes", "chunk_uneven", "clone", "expand_then_mul",
      "gather_dim0_smaller_index", "gather_dim1", "index_select_dim0_3d", "index_select_dim1",
      "index_select_int32_index", "narrow", "nonzero", "nonzero_large", "permute", "select", "slice_step",
      "split_pieces_sum_back", "split_second_piece", "split_sizes_last", "stack_dim1", "to_dtype_and_back",
      "transpose_then_reshape", "unsqueeze_squeeze_flatten"});
  take_halves_by_prefix(c, {"cumsum", "index_add", "scatter_add", "sort", "topk"});
  return c;
}

TS_INSTANTIATE_OP_TABLE(IndexShape, cases());

TEST(IndexErrors, OutOfRangeIndicesAndBadShapes) {
  Tensor x = zeros({3, 4});
  EXPECT_THROW(index_select(x, 1, from_vector<int64_t>({0, 4})), Error);
  EXPECT_THROW(index_select(x, 1, from_vector<int64_t>({-1})), Error);
  EXPECT_THROW(index_select(x, 1, from_vector<float>({0})), Error);
  EXPECT_THROW(index_select(x, 1, zeros({2, 2}, kInt64)), Error);
  EXPECT_THROW(gather(x, 1, zeros({3}, kInt64)), Error);
  EXPECT_THROW(gather(x, 1, full({5, 4}, 0, kInt64)), Error);  // index larger than x outside dim
  EXPECT_EQ(gather(x, 0, full({5, 4}, 0, kInt64)).shape(), (Shape{5, 4}));  // along dim any length is fine
  EXPECT_THROW(gather(x, 0, full({2, 4}, 3, kInt64)), Error);
  EXPECT_THROW(scatter_add(x, 0, full({2, 4}, 3, kInt64), zeros({2, 4})), Error);
  EXPECT_THROW(scatter_add(x, 0, zeros({2, 4}, kInt64), zeros({1, 4})), Error);
  EXPECT_THROW(scatter_add(zeros({3}, kUInt8), 0, zeros({2}, kInt64), zeros({2}, kUInt8)), Error);
  EXPECT_THROW(index_add(x, 0, zeros({2}, kInt64), zeros({3, 4})), Error);
  EXPECT_THROW(cat({}, 0), Error);
  EXPECT_THROW(cat({zeros({2, 3}), zeros({2, 4})}, 0), Error);
  EXPECT_THROW(cat({zeros({2, 3}), zeros({3})}, 0), Error);
  EXPECT_THROW(stack({zeros({2}), zeros({3})}, 0), Error);
  EXPECT_THROW(split(x, 0, 0), Error);
  EXPECT_THROW(split(x, Shape{1, 1}, 0), Error);
  EXPECT_THROW(chunk(x, 0, 0), Error);
  EXPECT_THROW(topk(x, 5, 1), Error);
  EXPECT_THROW(topk(x, -1, 1), Error);
  EXPECT_THROW(sort(x, 2), Error);
  try {
    index_select(x, 1, from_vector<int64_t>({0, 9}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  }
}

TEST(Index, SortPutsNanLast) {
  const float nan = std::nanf("");
  auto [v, i] = sort(from_vector<float>({2.f, nan, -1.f, 0.f}));
  std::vector<float> vv = v.to_vector<float>();
  EXPECT_EQ(vv[0], -1.f);
  EXPECT_EQ(vv[2], 2.f);
  EXPECT_TRUE(std::isnan(vv[3]));
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{2, 3, 0, 1}));
  EXPECT_EQ(sort(from_vector<bool>({true, false, true})).first.to_vector<bool>(), (std::vector<bool>{false, true, true}));
}

TEST(Index, NonzeroOfEmptyAndZeroDimTensors) {
  EXPECT_EQ(nonzero(zeros({0, 3})).shape(), (Shape{0, 2}));
  EXPECT_EQ(nonzero(zeros({4})).shape(), (Shape{0, 1}));
  EXPECT_EQ(nonzero(scalar_tensor(2.0)).shape(), (Shape{1, 0}));
}

// The kernels check their own indices (what CUDA relies on instead of a host check): called
// directly, past the op layer's check, an index outside the dimension is an Error naming the op,
// and nothing is written out of bounds.
TEST(IndexErrors, KernelsFlagOutOfRangeIndicesThemselves) {
  const Tensor x = randn({3, 4}), bad = from_vector<int64_t>({0, 4}), neg = from_vector<int64_t>({-1, 2});
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Tensor out = zeros({3, 2});
  EXPECT_NE(message([&] { index_select_kernel(out, x, bad, 3, 4, 1); }).find("index_select: index out of range"), std::string::npos);
  EXPECT_NE(message([&] { index_select_kernel(out, x, neg, 3, 4, 1); }).find("index_select"), std::string::npos);
  Tensor acc = zeros({3, 4});
  const Tensor all_bad = from_vector<int64_t>({4, -1});
  EXPECT_NE(message([&] { index_add_kernel(acc, ones({3, 2}), all_bad, 3, 4, 1); }).find("index_add"), std::string::npos);
  const Tensor gi = full({2, 4}, 3.0, kInt64);  // along dim 0 of a [3, 4] tensor: 3 is out
  EXPECT_NE(message([&] { gather_kernel(zeros({2, 4}), x, 0, gi); }).find("gather"), std::string::npos);
  EXPECT_NE(message([&] { scatter_add_kernel(acc, 0, gi, ones({2, 4})); }).find("scatter_add"), std::string::npos);
  EXPECT_EQ(amax(abs(acc)).item<float>(), 0.0f) << "flagged elements are skipped, not written elsewhere";
}

// The GPU's sort (radix sort of sort_key's encoding, then a gather), run on the CPU with the same
// functors, gives the CPU's stable order: NaNs of either sign last (first when descending) in index
// order, -0 and +0 tied, infinities at the ends; and the encoding itself is monotone.
TEST(Index, RadixSortKeysGiveTheCpuOrder) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> pool = {nan, -nan, -0.0f, 0.0f, inf, -inf, 1.f, -1.f, 2.5f, -2.5f, 1e-30f, -1e-30f, 3.f};
  Generator g(21);
  const std::vector<int64_t> pick = randint(0, static_cast<int64_t>(pool.size()), {4, 40}, kInt64, &g).to_vector<int64_t>();
  std::vector<float> v;
  for (int64_t k : pick) v.push_back(pool[static_cast<size_t>(k)]);
  const Tensor x32 = from_vector<float>(v, {4, 40});
  std::vector<int64_t> ints;
  for (int64_t k : pick) ints.push_back(k - 6);  // negatives, zero and ties
  const Tensor x64i = from_vector<int64_t>(ints, {4, 40});
  for (const Tensor& x : {x32, x32.to(kFloat64), x64i, x64i.to(kInt32), add(x64i, 6.0).to(kUInt8)})
    for (bool desc : {false, true}) {
      auto [cpu_values, cpu_indices] = sort(x, 1, desc);
      CpuPerElementScope per_element;
      auto [key_values, key_indices] = sort(x, 1, desc);
      EXPECT_TRUE(equal(key_indices, cpu_indices)) << dtype_name(x.dtype()) << (desc ? " descending" : "");
      EXPECT_TRUE(equal(key_values, cpu_values)) << dtype_name(x.dtype());
    }
  // Monotone: distinct values in increasing order get increasing keys; -0 and +0 one key, NaNs one key.
  const std::vector<float> increasing = {-inf, -3.f, -1e-30f, 0.0f, 1e-30f, 1.f, inf, nan};
  for (size_t i = 1; i < increasing.size(); ++i) EXPECT_LT(sort_key(increasing[i - 1]), sort_key(increasing[i])) << i;
  EXPECT_EQ(sort_key(-0.0f), sort_key(0.0f));
  EXPECT_EQ(sort_key(-nan), sort_key(nan));
  EXPECT_LT(sort_key(int64_t{-5}), sort_key(int64_t{3}));
  EXPECT_LT(sort_key(int32_t{-1}), sort_key(int32_t{0}));
}

}  // namespace
}  // namespace tessera::test
