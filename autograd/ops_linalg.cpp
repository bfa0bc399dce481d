// matmul (torch.matmul's rules, composed over one batched 3-D product) and softmax.
#include "autograd/autocast.h"
#include "autograd/op_helpers.h"
#include "kernels/matmul.h"
#include "kernels/softmax.h"

namespace tessera {

namespace {

// [batch, M, K] @ [batch, K, N] -> [batch, M, N], the one recorded product.
Tensor bmm_core(const Tensor& a, const Tensor& b) {
  if (detail::widens_on_cpu(a)) {  // CUDA: cuBLAS's half GEMM (float32 compute)
    detail::note_half_through_float32("matmul", a);
    return bmm_core(detail::widen_half(a), detail::widen_half(b)).to(a.dtype());
  }
  Tensor out = raw::empty({a.size(0), a.size(1), b.size(2)}, a.dtype(), a.device());
  matmul_kernel(out, a, b);
  if (needs_grad({&a, &b})) {
    const bool need_a = a.requires_grad(), need_b = b.requires_grad();
    record("MatmulBackward", {a, b}, {out},
           [sa = SavedTensor(need_b ? a : Tensor()), sb = SavedTensor(need_a ? b : Tensor()), need_a,
            need_b](std::vector<Tensor>& g) {
             // Transposed views: BLAS reads them without a copy.
             Tensor ga = need_a ? bmm_core(g[0], sb.get().transpose(1, 2)) : Tensor();
             Tensor gb = need_b ? bmm_core(sa.get().transpose(1, 2), g[0]) : Tensor();
             return std::vector<Tensor>{ga, gb};
           });
  }
  return out;
}

void check_matmul_operands(const char* op, const Tensor& a, const Tensor& b) {
  detail::check_same_device(op, {&a, &b});
  detail::check_floating(op, a, "the first operand");
  detail::check_floating(op, b, "the second operand");
  TS_CHECK(a.dtype() == b.dtype(), op, ": both operands must have one dtype, got ", dtype_name(a.dtype()), " and ",
           dtype_name(b.dtype()));
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  TS_AUTOCAST_LOW(a, matmul(TS_LOW(a), TS_LOW(b)));
  check_matmul_operands("matmul", a, b);
  TS_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least one dimension, got shapes ",
           shape_str(a.shape()), " and ", shape_str(b.shape()));
  // Promote vectors to matrices, multiply, then drop the added dimensions (torch.matmul).
  if (a.dim() == 1 && b.dim() == 1) {
    TS_CHECK(a.size(0) == b.size(0), "matmul: vectors of sizes ", a.size(0), " and ", b.size(0), " have no dot product");
    return matmul(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  }
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(1)).squeeze(-1);

  const int64_t M = a.size(-2), K = a.size(-1), K2 = b.size(-2), N = b.size(-1);
  TS_CHECK(K == K2, "matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " cannot be multiplied (",
           K, " != ", K2, ")");
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b);
  const int64_t batch_numel = shape_numel(batch);
  Shape shape_a = batch, shape_b = batch, shape_out = batch;
  shape_a.insert(shape_a.end(), {M, K});
  shape_b.insert(shape_b.end(), {K, N});
  shape_out.insert(shape_out.end(), {M, N});
  Tensor a3 = a.expand(shape_a).reshape({batch_numel, M, K});
  Tensor b3 = b.expand(shape_b).reshape({batch_numel, K, N});
  return bmm_core(a3, b3).reshape(shape_out);
}

Tensor mm(const Tensor& a, const Tensor& b) {
  TS_CHECK(a.defined() && b.defined() && a.dim() == 2 && b.dim() == 2, "mm: expected two 2-D tensors, got shapes ",
           a.defined() ? shape_str(a.shape()) : "undefined", " and ", b.defined() ? shape_str(b.shape()) : "undefined");
  return matmul(a, b);
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  TS_CHECK(a.defined() && b.defined() && a.dim() == 3 && b.dim() == 3, "bmm: expected two 3-D tensors, got shapes ",
           a.defined() ? shape_str(a.shape()) : "undefined", " and ", b.defined() ? shape_str(b.shape()) : "undefined");
  TS_CHECK(a.size(0) == b.size(0), "bmm: batch sizes differ (", a.size(0), " vs ", b.size(0), ")");
  TS_AUTOCAST_LOW(a, bmm(TS_LOW(a), TS_LOW(b)));
  check_matmul_operands("bmm", a, b);
  TS_CHECK(a.size(2) == b.size(1), "bmm: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
           " cannot be multiplied (", a.size(2), " != ", b.size(1), ")");
  return bmm_core(a, b);
}

// ---- softmax

static Tensor softmax_impl(const Tensor& x_in, int64_t dim_in, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  TS_CHECK(x_in.defined(), name, ": the input tensor is undefined");
  detail::check_floating(name, x_in);
  if (is_half(x_in.dtype())) return softmax_impl(detail::widen_half(x_in), dim_in, log).to(x_in.dtype());
  const int64_t dim = wrap_dim(dim_in, x_in.dim(), name);
  Tensor x = raw::contiguous(x_in);
  int64_t outer = 1, D = x.dim() == 0 ? 1 : x.size(dim), inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  Tensor out = raw::empty(x.shape(), x.dtype(), x.device());
  softmax_kernel(out, x, outer, D, inner, log);
  if (needs_grad({&x_in})) {
    record(log ? "LogSoftmaxBackward" : "SoftmaxBackward", {x_in}, {out},
           [so = SavedTensor(out), outer, D, inner, log](std::vector<Tensor>& g) {
             Tensor y = so.get();
             Tensor gc = raw::contiguous(g[0]);
             Tensor gx = raw::empty(y.shape(), y.dtype(), y.device());
             softmax_backward_kernel(gx, gc, y, outer, D, inner, log);
             return std::vector<Tensor>{gx};
           });
  }
  return out;
}

Tensor softmax(const Tensor& x, int64_t dim) {
  TS_AUTOCAST_F32(x, softmax(TS_F32(x), dim));
  return softmax_impl(x, dim, false);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  TS_AUTOCAST_F32(x, log_softmax(TS_F32(x), dim));
  return softmax_impl(x, dim, true);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  TS_CHECK(x.defined() && weight.defined() && weight.dim() == 2, "linear: expected an input and a 2-D weight [out, in], got ",
           x.defined() ? x.str() : "undefined", " and ", weight.defined() ? weight.str() : "undefined");
  TS_AUTOCAST_LOW(x, linear(TS_LOW(x), TS_LOW(weight), TS_LOW(bias)));
  Tensor y = matmul(x, weight.t());
  return bias.defined() ? add(y, bias) : y;
}

}  // namespace tessera
