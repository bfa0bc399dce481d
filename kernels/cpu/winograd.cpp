// Winograd F(2x2, 3x3) for the CPU's 3x3 stride-1 convolutions (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016). A 4x4 input tile d and a 3x3 filter g give the 2x2 output
// tile Y = A^T [(G g G^T) .* (B^T d B)] A. Summed over the input channels, the elementwise product
// becomes 16 independent GEMMs, one per tile position xi: M[xi] [O, tiles] = U[xi] [O, C] x V[xi]
// [C, tiles]. That is 16 multiplications for 4 outputs instead of 36 (2.25x fewer); the transforms
// are additions only (B and A hold 0 and +-1, G also 1/2, all exact in binary), so the result
// differs from direct summation by rounding alone. See kernels/conv.h for when it is used.
#include <algorithm>
#include <vector>

#include "core/dispatch.h"
#include "kernels/conv.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/scratch.h"
#include "kernels/elementwise.h"

namespace tessera {

namespace {

constexpr int64_t kTile = 16;  // 4 x 4 transformed values per tile

// Tile grid: tiles_h x tiles_w tiles per image, each covering 2 x 2 outputs (the last row/column
// of tiles may stick out of an odd-sized output; what sticks out is computed from zero padding and
// dropped). A band is a run of consecutive tile rows counted over the whole batch (image n, tile row
// th) -> n * tiles_h + th, so small images (the mask head's 14 x 14 RoIs) share one GEMM.
struct TileGrid {
  int64_t th, tw;
  explicit TileGrid(const Conv2dGeometry& g) : th((g.Ho + 1) / 2), tw((g.Wo + 1) / 2) {}
};

// U[xi][o][c] = (G g G^T)[xi] with G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
// bfloat16: computed in float32 from the bfloat16 weights, each U rounded once to bfloat16.
// Blocks of 64 (o, c) pairs: the block's 16 x 64 transformed values go to a local array, then out
// as 16 contiguous runs (one value OC apart per pair and position was the slow part).
template <class T>
void transform_filters(const T* w, T* U, const Conv2dGeometry& g) {
  using F = opmath_t<T>;
  constexpr int64_t kBlock = 64;
  const int64_t OC = g.O * g.C;
  parallel_chunks((OC + kBlock - 1) / kBlock, 16, [=](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t oc0 = blk * kBlock, n = std::min(kBlock, OC - oc0);
      F u[16][kBlock];
      const T* wb = w + oc0 * 9;
      for (int64_t q = 0; q < n; ++q) {
        const T* k = wb + q * 9;
        F t[4][3];  // G g
        for (int j = 0; j < 3; ++j) {
          const F k0 = k[j], k1 = k[3 + j], k2 = k[6 + j];
          t[0][j] = k0;
          t[1][j] = F(0.5) * (k0 + k1 + k2);
          t[2][j] = F(0.5) * (k0 - k1 + k2);
          t[3][j] = k2;
        }
        for (int i = 0; i < 4; ++i) {  // (G g) G^T
          u[4 * i][q] = t[i][0];
          u[4 * i + 1][q] = F(0.5) * (t[i][0] + t[i][1] + t[i][2]);
          u[4 * i + 2][q] = F(0.5) * (t[i][0] - t[i][1] + t[i][2]);
          u[4 * i + 3][q] = t[i][2];
        }
      }
      for (int xi = 0; xi < 16; ++xi) {
        T* dst = U + xi * OC + oc0;
        for (int64_t q = 0; q < n; ++q) dst[q] = T(u[xi][q]);
      }
    }
  });
}

// The transforms' inner loops, each over one row with restrict-qualified rows, so that the compiler
// vectorizes them (the tile-row functors below would otherwise run them scalar: their rows could
// alias). The arithmetic and its order are the same as written per tile.

// B^T d down the columns, in place: rows d0..d3 become t0..t3.
template <class F>
void vertical_input_transform(F* __restrict d0, F* __restrict d1, F* __restrict d2, F* __restrict d3, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const F a = d0[j], b = d1[j], e = d2[j], f = d3[j];
    d0[j] = a - e;
    d1[j] = b + e;
    d2[j] = e - b;
    d3[j] = b - f;
  }
}

// (B^T d) B along one row s of tw tiles: v[k * ld + tw] for the row's four tile positions k.
template <class F, class T>
void horizontal_input_transform(const F* __restrict s, T* __restrict v, int64_t ld, int64_t tiles) {
  T* __restrict v0 = v;
  T* __restrict v1 = v + ld;
  T* __restrict v2 = v + 2 * ld;
  T* __restrict v3 = v + 3 * ld;
  for (int64_t tw = 0; tw < tiles; ++tw) {
    const F s0 = s[2 * tw], s1 = s[2 * tw + 1], s2 = s[2 * tw + 2], s3 = s[2 * tw + 3];
    v0[tw] = T(s0 - s2);
    v1[tw] = T(s1 + s2);
    v2[tw] = T(s2 - s1);
    v3[tw] = T(s1 - s3);
  }
}

// A^T m A for a row of tiles: m[xi * ld + tw] the 16 GEMM results of tile tw, z0 and z1 the two
// output rows (2 tiles values each, interleaved: z[2 tw], z[2 tw + 1]).
template <class F>
void output_transform(const F* __restrict m, int64_t ld, int64_t tiles, F* __restrict z0, F* __restrict z1) {
  for (int64_t tw = 0; tw < tiles; ++tw) {
    F s0[4], s1[4];  // A^T m
    for (int j = 0; j < 4; ++j) {
      const F m0 = m[j * ld + tw], m1 = m[(4 + j) * ld + tw], m2 = m[(8 + j) * ld + tw], m3 = m[(12 + j) * ld + tw];
      s0[j] = m0 + m1 + m2;
      s1[j] = m1 - m2 - m3;
    }
    z0[2 * tw] = s0[0] + s0[1] + s0[2];
    z0[2 * tw + 1] = s0[1] - s0[2] - s0[3];
    z1[2 * tw] = s1[0] + s1[1] + s1[2];
    z1[2 * tw + 1] = s1[1] - s1[2] - s1[3];
  }
}

// V[xi][c][t] = (B^T d B)[xi] with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], for channel c and
// the tiles of one tile row. The four input rows are first copied into a zero-padded scratch row
// (so the inner loops have no bounds tests), combined vertically in place, then horizontally.
// bfloat16: the scratch row is float32 and each V is rounded once to bfloat16.
template <class T>
struct InputTransformRow {
  using F = opmath_t<T>;
  const T* x;
  T* V;
  Conv2dGeometry g;
  TileGrid grid;
  int64_t R0, T_band;  // first global tile row of the band, tiles in the band
  void operator()(int64_t job) const {
    const int64_t r = job % (T_band / grid.tw), c = job / (T_band / grid.tw);
    const int64_t R = R0 + r, n = R / grid.th, th = R % grid.th;
    const int64_t Wp = 2 * grid.tw + 2;  // padded input columns -pad_w .. -pad_w + Wp - 1
    thread_local std::vector<F> scratch;
    scratch.resize(static_cast<size_t>(4 * Wp));
    F* d[4];
    const T* plane = x + (n * g.C + c) * g.H * g.W;
    for (int i = 0; i < 4; ++i) {
      d[i] = scratch.data() + i * Wp;
      const int64_t h = 2 * th - g.pad_h + i;
      if (h < 0 || h >= g.H) {
        std::fill(d[i], d[i] + Wp, F(0));
        continue;
      }
      const T* src = plane + h * g.W;
      const int64_t lo = std::min<int64_t>(Wp, g.pad_w), hi = std::clamp<int64_t>(g.W + g.pad_w, lo, Wp);
      std::fill(d[i], d[i] + lo, F(0));
      std::copy(src + (lo - g.pad_w), src + (hi - g.pad_w), d[i] + lo);
      std::fill(d[i] + hi, d[i] + Wp, F(0));
    }
    vertical_input_transform(d[0], d[1], d[2], d[3], Wp);
    const int64_t CT = g.C * T_band, base = c * T_band + r * grid.tw;
    for (int i = 0; i < 4; ++i) horizontal_input_transform(d[i], V + (4 * i) * CT + base, CT, grid.tw);
  }
};

// Y = A^T m A with A^T = [1 1 1 0; 0 1 -1 -1] for output channel o and one tile row, then scale,
// bias, ReLU, and a store (or an addition, for accumulating callers) into the output's two rows.
// bfloat16: M is float32 (the GEMM's sums); each output is rounded once.
template <class T>
struct OutputTransformRow {
  using F = opmath_t<T>;
  const F* M;
  T* out;
  const T* bias;
  const T* scale;
  Conv2dGeometry g;
  TileGrid grid;
  int64_t R0, T_band;
  bool relu, accumulate;
  void operator()(int64_t job) const {
    const int64_t r = job % (T_band / grid.tw), o = job / (T_band / grid.tw);
    const int64_t R = R0 + r, n = R / grid.th, th = R % grid.th;
    const int64_t OT = g.O * T_band;
    const F* m = M + o * T_band + r * grid.tw;
    const F b = bias ? F(bias[o]) : F(0);
    const F s = scale ? F(scale[o]) : F(1);
    T* y0 = out + ((n * g.O + o) * g.Ho + 2 * th) * g.Wo;
    thread_local std::vector<F> scratch;  // the tile row's two output rows, 2 tw values each
    scratch.resize(static_cast<size_t>(4 * grid.tw));
    F* z0 = scratch.data();
    F* z1 = z0 + 2 * grid.tw;
    output_transform(m, OT, grid.tw, z0, z1);
    cpu::epilogue_row<T>(z0, y0, g.Wo, s, b, scale != nullptr, relu, accumulate);
    if (2 * th + 1 < g.Ho) cpu::epilogue_row<T>(z1, y0 + g.Wo, g.Wo, s, b, scale != nullptr, relu, accumulate);
  }
};

// The adjoint of the output transform down the columns: t = A dY for the two output rows y0, y1
// of a tile row, t0 = y0, t1 = y0 + y1, t2 = y0 - y1, t3 = -y1.
template <class F>
void vertical_grad_output_transform(const F* __restrict y0, const F* __restrict y1, F* __restrict t0, F* __restrict t1,
                                    F* __restrict t2, F* __restrict t3, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const F a = y0[j], c = y1[j];
    t0[j] = a;
    t1[j] = a + c;
    t2[j] = a - c;
    t3[j] = -c;
  }
}

// ... and along one row s of tw tiles (two values per tile): dm[k * ld + tw] = (t A^T)[k] for the
// row's four tile positions k.
template <class F, class T>
void horizontal_grad_output_transform(const F* __restrict s, T* __restrict m, int64_t ld, int64_t tiles) {
  T* __restrict m0 = m;
  T* __restrict m1 = m + ld;
  T* __restrict m2 = m + 2 * ld;
  T* __restrict m3 = m + 3 * ld;
  for (int64_t tw = 0; tw < tiles; ++tw) {
    const F a = s[2 * tw], b = s[2 * tw + 1];
    m0[tw] = T(a);
    m1[tw] = T(a + b);
    m2[tw] = T(a - b);
    m3[tw] = T(-b);
  }
}

// The adjoint of OutputTransformRow for the weight gradient: dM = A dY A^T per tile (outputs that
// stick out of the image count as zero), for output channel o and one tile row: the two rows of
// dY are copied into a zero-padded scratch row, then combined vertically and horizontally.
// bfloat16: sums in float32, each dM rounded once.
template <class T>
struct GradOutputTransformRow {
  using F = opmath_t<T>;
  const T* dy;
  T* dM;
  Conv2dGeometry g;
  TileGrid grid;
  int64_t R0, T_band;
  void operator()(int64_t job) const {
    const int64_t r = job % (T_band / grid.tw), o = job / (T_band / grid.tw);
    const int64_t R = R0 + r, n = R / grid.th, th = R % grid.th;
    const int64_t OT = g.O * T_band, Wt = 2 * grid.tw;
    thread_local std::vector<F> scratch;
    scratch.resize(static_cast<size_t>(6 * Wt));
    F* y[2] = {scratch.data(), scratch.data() + Wt};
    const T* src = dy + ((n * g.O + o) * g.Ho + 2 * th) * g.Wo;
    for (int i = 0; i < 2; ++i) {
      if (2 * th + i < g.Ho) {
        std::copy(src + i * g.Wo, src + (i + 1) * g.Wo, y[i]);
        std::fill(y[i] + g.Wo, y[i] + Wt, F(0));
      } else {
        std::fill(y[i], y[i] + Wt, F(0));
      }
    }
    F* t = scratch.data() + 2 * Wt;
    vertical_grad_output_transform(y[0], y[1], t, t + Wt, t + 2 * Wt, t + 3 * Wt, Wt);
    T* m = dM + o * T_band + r * grid.tw;
    for (int i = 0; i < 4; ++i) horizontal_grad_output_transform(t + i * Wt, m + (4 * i) * OT, OT, grid.tw);
  }
};

// The adjoint of transform_filters: grad_w[o][c] = G^T dU[o][c] G (dU float32 for bfloat16).
template <class T>
void transform_filter_gradients(const opmath_t<T>* dU, T* gw, const Conv2dGeometry& g) {
  using F = opmath_t<T>;
  const int64_t OC = g.O * g.C;
  parallel_for(OC, [=](int64_t oc) {
    F u[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) u[i][j] = dU[(4 * i + j) * OC + oc];
    F s[3][4];  // G^T dU
    for (int j = 0; j < 4; ++j) {
      s[0][j] = u[0][j] + F(0.5) * (u[1][j] + u[2][j]);
      s[1][j] = F(0.5) * (u[1][j] - u[2][j]);
      s[2][j] = F(0.5) * (u[1][j] + u[2][j]) + u[3][j];
    }
    T* k = gw + oc * 9;
    for (int i = 0; i < 3; ++i) {  // (G^T dU) G
      k[3 * i] = T(s[i][0] + F(0.5) * (s[i][1] + s[i][2]));
      k[3 * i + 1] = T(F(0.5) * (s[i][1] - s[i][2]));
      k[3 * i + 2] = T(F(0.5) * (s[i][1] + s[i][2]) + s[i][3]);
    }
  }, 4096);
}

// Tile rows per band: the band's two transformed matrices (C and O channels) stay under ~8 MiB
// together (as the im2col bands).
int64_t band_tile_rows(const Conv2dGeometry& g, const TileGrid& grid, size_t elem) {
  const int64_t per_row = kTile * (g.C + g.O) * grid.tw * static_cast<int64_t>(elem);
  return std::clamp<int64_t>((int64_t{8} << 20) / per_row, 1, g.N * grid.th);
}

}  // namespace

bool conv2d_winograd_applies(const Conv2dGeometry& g) {
  const bool shape = g.kh == 3 && g.kw == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 && g.dil_w == 1 &&
                     g.groups == 1 && g.pad_h >= 0 && g.pad_h <= 2 && g.pad_w >= 0 && g.pad_w <= 2;
  // Few channels: the 16 GEMMs are too thin to beat one im2col GEMM. Few tiles: the filter
  // transform (16 O C values per call) costs more than it saves.
  const TileGrid grid(g);
  return shape && g.C >= kWinogradMinChannels && g.O >= kWinogradMinChannels && g.N * grid.th * grid.tw >= 64;
}

void conv2d_winograd_forward_cpu(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g,
                                 bool relu, const Tensor& scale, bool accumulate) {
  cpu::dispatch_gemm_types(x.dtype(), "conv2d", [&]<class T>() {
    const TileGrid grid(g);
    cpu::Scratch<T> U(static_cast<size_t>(kTile * g.O * g.C));
    transform_filters(w.data<T>(), U.data(), g);
    const int64_t rows_total = g.N * grid.th, band = band_tile_rows(g, grid, sizeof(T));
    cpu::Scratch<T> V;
    cpu::Scratch<opmath_t<T>> M;
    for (int64_t R0 = 0; R0 < rows_total; R0 += band) {
      const int64_t rows = std::min(band, rows_total - R0), T_band = rows * grid.tw;
      V.resize(static_cast<size_t>(kTile * g.C * T_band));
      M.resize(static_cast<size_t>(kTile * g.O * T_band));
      parallel_for(g.C * rows, InputTransformRow<T>{x.data<T>(), V.data(), g, grid, R0, T_band}, 1);
      // One single-threaded GEMM per tile position on each thread (OpenBLAS and gemm_bf16 run
      // single-threaded inside an OpenMP region): no synchronisation inside the 16 products.
      parallel_for(kTile, [&](int64_t xi) {
        cpu::gemm_opmath<T>(false, false, g.O, T_band, g.C, U.data() + xi * g.O * g.C, g.C, V.data() + xi * g.C * T_band,
                            T_band, false, M.data() + xi * g.O * T_band, T_band);
      }, 1);
      parallel_for(g.O * rows,
                   OutputTransformRow<T>{M.data(), out.data<T>(), bias.defined() ? bias.data<T>() : nullptr,
                                         scale.defined() ? scale.data<T>() : nullptr, g, grid, R0, T_band, relu, accumulate}, 1);
    }
  });
}

// dL/dU[xi] = sum over tiles of dM[xi] V[xi]^T (the forward's GEMMs, differentiated), summed
// over the bands, then grad_w = G^T dU G. Exact for any 3x3 stride-1 convolution, whichever way its
// forward ran.
void conv2d_winograd_backward_weight_cpu(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g) {
  cpu::dispatch_gemm_types(x.dtype(), "conv2d_backward", [&]<class T>() {
    const TileGrid grid(g);
    const int64_t rows_total = g.N * grid.th, band = band_tile_rows(g, grid, sizeof(T));
    cpu::Scratch<opmath_t<T>> dU(static_cast<size_t>(kTile * g.O * g.C));
    cpu::Scratch<T> V, dM;
    for (int64_t R0 = 0; R0 < rows_total; R0 += band) {
      const int64_t rows = std::min(band, rows_total - R0), T_band = rows * grid.tw;
      V.resize(static_cast<size_t>(kTile * g.C * T_band));
      dM.resize(static_cast<size_t>(kTile * g.O * T_band));
      parallel_for(g.C * rows, InputTransformRow<T>{x.data<T>(), V.data(), g, grid, R0, T_band}, 1);
      parallel_for(g.O * rows, GradOutputTransformRow<T>{grad_out.data<T>(), dM.data(), g, grid, R0, T_band}, 1);
      parallel_for(kTile, [&](int64_t xi) {
        cpu::gemm_opmath<T>(false, true, g.O, g.C, T_band, dM.data() + xi * g.O * T_band, T_band, V.data() + xi * g.C * T_band,
                            T_band, R0 > 0, dU.data() + xi * g.O * g.C, g.C);
      }, 1);
    }
    transform_filter_gradients(dU.data(), grad_w.data<T>(), g);
  });
}

}  // namespace tessera
