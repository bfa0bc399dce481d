// CPU convolution: im2col + GEMM over bands of output rows; 1x1 stride-1 convolutions read the
// input directly. See kernels/conv.h.
#include <algorithm>

#include "core/view.h"
#include "kernels/conv.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/scratch.h"
#include "kernels/elementwise.h"

namespace tessera {

namespace {

// The output columns ow whose input column ow * s + off lies in [0, W): [lo, hi).
void valid_columns(int64_t W, int64_t Wo, int64_t s, int64_t off, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = W - 1 - off < 0 ? 0 : (W - 1 - off) / s + 1;
  hi = std::min(hi, Wo);
  lo = std::min(lo, hi);
}

// One row of the column buffer per call: cols[k][r * Wo .. (r + 1) * Wo) for k = (c, i, j) and
// output row r0 + r of one (image, group): a strided read of input row oh * s - p + i * d.
template <class T>
struct Im2colRow {
  const T* x;  // the group's first channel plane
  T* cols;
  Conv2dGeometry g;
  int64_t r0, rows;
  void operator()(int64_t row) const {
    const int64_t r = row % rows, k = row / rows;
    const int64_t j = k % g.kw, i = (k / g.kw) % g.kh, c = k / (g.kw * g.kh);
    const int64_t h = (r0 + r) * g.stride_h - g.pad_h + i * g.dil_h;
    T* dst = cols + row * g.Wo;
    if (h < 0 || h >= g.H) {
      std::fill(dst, dst + g.Wo, T(0));
      return;
    }
    const T* src = x + (c * g.H + h) * g.W;
    const int64_t off = j * g.dil_w - g.pad_w;
    int64_t lo, hi;
    valid_columns(g.W, g.Wo, g.stride_w, off, lo, hi);
    std::fill(dst, dst + lo, T(0));
    if (g.stride_w == 1) {
      for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow + off];
    } else {
      for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * g.stride_w + off];
    }
    std::fill(dst + hi, dst + g.Wo, T(0));
  }
};

// One input row (c, h) of the band per call: adds every column-buffer entry that read it. Each row
// is owned by one call, so no two threads write the same pixel.
template <class T>
struct Col2imRow {
  const T* cols;
  T* gx;  // the group's first channel plane
  Conv2dGeometry g;
  int64_t r0, rows, h0, hn;
  void operator()(int64_t row) const {
    const int64_t c = row / hn, h = h0 + row % hn;
    T* dst = gx + (c * g.H + h) * g.W;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t th = h + g.pad_h - i * g.dil_h;
      if (th < 0 || th % g.stride_h != 0) continue;
      const int64_t oh = th / g.stride_h;
      if (oh < r0 || oh >= r0 + rows) continue;
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* src = cols + (((c * g.kh + i) * g.kw + j) * rows + (oh - r0)) * g.Wo;
        const int64_t off = j * g.dil_w - g.pad_w;
        int64_t lo, hi;
        valid_columns(g.W, g.Wo, g.stride_w, off, lo, hi);
        if (g.stride_w == 1) {
          for (int64_t ow = lo; ow < hi; ++ow) dst[ow + off] += src[ow];
        } else {
          for (int64_t ow = lo; ow < hi; ++ow) dst[ow * g.stride_w + off] += src[ow];
        }
      }
    }
  }
};

// Winograd unless switched off (for bfloat16 also by set_cpu_winograd_bf16: its transformed tiles
// are rounded to bfloat16).
bool use_winograd(const Conv2dGeometry& g, DType d) {
  return cpu_winograd() && (d != DType::BFloat16 || cpu_winograd_bf16()) && conv2d_winograd_applies(g);
}

int64_t row_grain(int64_t row_length) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(row_length, 1)); }

bool is_pointwise(const Conv2dGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

// Output rows per band: the column buffer (and, for bfloat16, the float32 GEMM result, acc_elem
// bytes per output value) stays under ~8 MiB, so that im2col's writes are still in the shared L3
// when the GEMM packs them. Measured on the U-Net at 572 x 572 (2 cores, 32 MiB L3):
// 8 MiB beat 16 MiB (width 64: 973-1017 vs 1017-1021 ms; width 16, batch 4: 441-456 vs 501-503 ms)
// and 4 MiB (1069-1092 / 448-458 ms); 2 MiB and less lose more than that (one output row per GEMM).
int64_t band_rows(const Conv2dGeometry& g, size_t elem, size_t acc_elem = 0) {
  const int64_t per_row = std::max<int64_t>(1, (g.K() * static_cast<int64_t>(elem) + g.Og() * static_cast<int64_t>(acc_elem)) * g.Wo);
  return std::clamp<int64_t>((int64_t{8} << 20) / per_row, 1, g.Ho);
}

// Calls f(n, group, r0, rows, B, ldb) for every band, B being the band's column matrix [K, rows*Wo]
// (the input itself for pointwise convolutions).
template <class T, class F>
void for_each_band(const T* x, const Conv2dGeometry& g, cpu::Scratch<T>& buffer, F f, size_t acc_elem = 0) {
  const int64_t HW = g.H * g.W;
  const int64_t rows_per_band = band_rows(g, sizeof(T), acc_elem);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.C + grp * g.Cg()) * HW;
      for (int64_t r0 = 0; r0 < g.Ho; r0 += rows_per_band) {
        const int64_t rows = std::min(rows_per_band, g.Ho - r0);
        if (is_pointwise(g)) {
          f(n, grp, r0, rows, xg + r0 * g.Wo, HW);
          continue;
        }
        buffer.resize(static_cast<size_t>(g.K() * rows * g.Wo));
        parallel_for(g.K() * rows, Im2colRow<T>{xg, buffer.data(), g, r0, rows}, row_grain(g.Wo));
        f(n, grp, r0, rows, buffer.data(), rows * g.Wo);
      }
    }
}


// dst row o = act(src row o * scale[o] + bias[o]) for the band's Og rows: src is the GEMM's result
// (dst itself for float32/float64; the float32 sums of a bfloat16 band, rounded here).
template <class T>
void band_epilogue(const opmath_t<T>* src, int64_t src_ld, T* dst, int64_t dst_ld, int64_t Og, int64_t len, const T* bias,
                   const T* scale, bool relu) {
  using F = opmath_t<T>;
  parallel_for(Og, [=](int64_t o) {
    cpu::epilogue_row<T>(src + o * src_ld, dst + o * dst_ld, len, scale ? F(scale[o]) : F(1), bias ? F(bias[o]) : F(0),
                         scale != nullptr, relu, false);
  }, row_grain(len));
}

}  // namespace

void conv2d_forward_kernel_cpu(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g,
                               bool relu, const Tensor& scale) {
  if (use_winograd(g, x.dtype())) {
    conv2d_winograd_forward_cpu(out, x, w, bias, g, relu, scale, false);
    return;
  }
  cpu::dispatch_gemm_types(x.dtype(), "conv2d", [&]<class T>() {
    constexpr bool wide_sums = !std::is_same_v<T, opmath_t<T>>;  // bfloat16: float32 band, then rounded
    const T* pw = w.data<T>();
    const T* pb = bias.defined() ? bias.data<T>() : nullptr;
    const T* ps = scale.defined() ? scale.data<T>() : nullptr;
    T* po = out.data<T>();
    const int64_t HoWo = g.Ho * g.Wo;
    cpu::Scratch<T> buffer;
    cpu::Scratch<opmath_t<T>> sums;
    for_each_band(x.data<T>(), g, buffer, [&](int64_t n, int64_t grp, int64_t r0, int64_t rows, const T* B, int64_t ldb) {
      T* C = po + (n * g.O + grp * g.Og()) * HoWo + r0 * g.Wo;
      const int64_t len = rows * g.Wo;
      const T* bg = pb ? pb + grp * g.Og() : nullptr;
      const T* sg = ps ? ps + grp * g.Og() : nullptr;
      if constexpr (wide_sums) {
        sums.resize(static_cast<size_t>(g.Og() * len));
        cpu::gemm_opmath<T>(false, false, g.Og(), len, g.K(), pw + grp * g.Og() * g.K(), g.K(), B, ldb, false, sums.data(), len);
        band_epilogue<T>(sums.data(), len, C, HoWo, g.Og(), len, bg, sg, relu);
      } else {
        cpu::gemm_opmath<T>(false, false, g.Og(), len, g.K(), pw + grp * g.Og() * g.K(), g.K(), B, ldb, false, C, HoWo);
        if (bg || sg || relu) band_epilogue<T>(C, HoWo, C, HoWo, g.Og(), len, bg, sg, relu);
      }
    }, wide_sums ? sizeof(opmath_t<T>) : 0);
  });
}

void conv2d_backward_weight_kernel_cpu(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g) {
  if (use_winograd(g, x.dtype())) {
    conv2d_winograd_backward_weight_cpu(grad_w, grad_out, x, g);
    return;
  }
  cpu::dispatch_gemm_types(x.dtype(), "conv2d_backward", [&]<class T>() {
    constexpr bool wide_sums = !std::is_same_v<T, opmath_t<T>>;
    const T* pgo = grad_out.data<T>();
    const int64_t HoWo = g.Ho * g.Wo;
    // The sums over every band and image: in grad_w itself, or in float32 for bfloat16.
    cpu::Scratch<opmath_t<T>> wide(wide_sums ? static_cast<size_t>(g.O * g.K()) : 0);
    opmath_t<T>* acc;
    if constexpr (wide_sums) {
      acc = wide.data();
      std::fill(acc, acc + wide.size(), opmath_t<T>(0));
    } else {
      raw::fill_(grad_w, 0.0);
      acc = grad_w.data<T>();
    }
    cpu::Scratch<T> buffer;
    for_each_band(x.data<T>(), g, buffer, [&](int64_t n, int64_t grp, int64_t r0, int64_t rows, const T* B, int64_t ldb) {
      const T* A = pgo + (n * g.O + grp * g.Og()) * HoWo + r0 * g.Wo;  // [Og, rows*Wo], ld HoWo
      cpu::gemm_opmath<T>(false, true, g.Og(), g.K(), rows * g.Wo, A, HoWo, B, ldb, true, acc + grp * g.Og() * g.K(), g.K());
    });
    if constexpr (wide_sums) cpu::store_rounded(grad_w.data<T>(), wide.data(), g.O * g.K(), false);
  });
}

// The gradient of a 3x3 stride-1 convolution with respect to its input is itself one: grad_out,
// padded by 2 - pad, correlated with the filters flipped in both axes and with in/out exchanged.
// That convolution goes through Winograd when it qualifies.
Conv2dGeometry input_gradient_as_convolution(const Conv2dGeometry& g) {
  Conv2dGeometry t = g;
  t.C = g.O, t.H = g.Ho, t.W = g.Wo, t.O = g.C, t.Ho = g.H, t.Wo = g.W;
  t.pad_h = g.kh - 1 - g.pad_h, t.pad_w = g.kw - 1 - g.pad_w;
  return t;
}

void conv2d_backward_input_kernel_cpu(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g) {
  if (const Conv2dGeometry t = input_gradient_as_convolution(g); use_winograd(t, w.dtype())) {
    Tensor flipped = raw::empty({g.C, g.O, 3, 3}, w.dtype(), w.device());  // [c][o][i][j] = w[o][c][2-i][2-j]
    const auto flip = [&]<class T>() {
      const T* src = w.data<T>();
      T* dst = flipped.data<T>();
      parallel_for(g.C * g.O, [=](int64_t co) {
        const int64_t c = co / g.O, o = co % g.O;
        for (int k = 0; k < 9; ++k) dst[co * 9 + k] = src[(o * g.C + c) * 9 + (8 - k)];
      }, 4096);
    };
    cpu::dispatch_gemm_types(w.dtype(), "conv2d_backward", flip);
    conv2d_winograd_forward_cpu(grad_x, grad_out, flipped, Tensor(), t, false, Tensor(), true);
    return;
  }
  cpu::dispatch_gemm_types(w.dtype(), "conv2d_backward", [&]<class T>() {
    using F = opmath_t<T>;
    constexpr bool wide_sums = !std::is_same_v<T, F>;
    const T* pw = w.data<T>();
    const T* pgo = grad_out.data<T>();
    T* pgx = grad_x.data<T>();
    const int64_t HW = g.H * g.W, HoWo = g.Ho * g.Wo;
    const int64_t rows_per_band = band_rows(g, sizeof(F));
    cpu::Scratch<F> cols, image(wide_sums ? static_cast<size_t>(g.Cg() * HW) : 0);
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        const T* Wg = pw + grp * g.Og() * g.K();                  // [Og, K]
        T* gx = pgx + (n * g.C + grp * g.Cg()) * HW;              // [Cg, H, W]
        // Where the contributions are summed: grad_x itself, or a float32 image for bfloat16.
        F* target;
        if constexpr (wide_sums) {
          std::fill(image.data(), image.data() + image.size(), F(0));
          target = image.data();
        } else {
          target = gx;
        }
        for (int64_t r0 = 0; r0 < g.Ho; r0 += rows_per_band) {
          const int64_t rows = std::min(rows_per_band, g.Ho - r0);
          const T* A = pgo + (n * g.O + grp * g.Og()) * HoWo + r0 * g.Wo;  // [Og, rows*Wo], ld HoWo
          if (is_pointwise(g)) {  // the columns are the input pixels: accumulate straight into the target
            cpu::gemm_opmath<T>(true, false, g.K(), rows * g.Wo, g.Og(), Wg, g.K(), A, HoWo, true, target + r0 * g.Wo, HW);
            continue;
          }
          cols.resize(static_cast<size_t>(g.K() * rows * g.Wo));
          cpu::gemm_opmath<T>(true, false, g.K(), rows * g.Wo, g.Og(), Wg, g.K(), A, HoWo, false, cols.data(), rows * g.Wo);
          // Input rows that this band's windows touch.
          const int64_t h0 = std::max<int64_t>(0, r0 * g.stride_h - g.pad_h);
          const int64_t h1 = std::min<int64_t>(g.H, (r0 + rows - 1) * g.stride_h - g.pad_h + (g.kh - 1) * g.dil_h + 1);
          if (h1 <= h0) continue;
          parallel_for(g.Cg() * (h1 - h0), Col2imRow<F>{cols.data(), target, g, r0, rows, h0, h1 - h0}, row_grain(g.W * g.kh * g.kw));
        }
        if constexpr (wide_sums) cpu::store_rounded(gx, image.data(), g.Cg() * HW, true);
      }
  });
}

}  // namespace tessera
