// Elementwise: op names, and routing of each entry point to the CPU or CUDA launch.
#include "kernels/elementwise.h"

#include "core/dispatch.h"

namespace tessera {

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge;
}
bool is_logical(BinaryOp op) { return op == BinaryOp::LogicalAnd || op == BinaryOp::LogicalOr; }

const char* op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Sign: return "sign";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Log1p: return "log1p";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Rsqrt: return "rsqrt";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::LogicalNot: return "logical_not";
    case UnaryOp::Pow: return "pow";
    case UnaryOp::Clamp: return "clamp";
  }
  return "unary";
}

const char* op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Eq: return "eq";
    case BinaryOp::Ne: return "ne";
    case BinaryOp::Lt: return "lt";
    case BinaryOp::Le: return "le";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Ge: return "ge";
    case BinaryOp::LogicalAnd: return "logical_and";
    case BinaryOp::LogicalOr: return "logical_or";
    case BinaryOp::ReluBackward: return "relu_backward";
    case BinaryOp::SigmoidBackward: return "sigmoid_backward";
    case BinaryOp::TanhBackward: return "tanh_backward";
  }
  return "binary";
}

void elementwise_unary(UnaryOp op, const Tensor& out, const Tensor& in, double p0, double p1) {
  if (out.is_cuda()) TS_CUDA_CALL(unary_kernel_cuda(op, out, in, p0, p1));
  else unary_kernel_cpu(op, out, in, p0, p1);
}

void elementwise_binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  if (out.is_cuda()) TS_CUDA_CALL(binary_kernel_cuda(op, out, a, b));
  else binary_kernel_cpu(op, out, a, b);
}

void elementwise_binary_scalar(BinaryOp op, const Tensor& out, const Tensor& a, double s, bool scalar_first) {
  if (out.is_cuda()) TS_CUDA_CALL(binary_scalar_kernel_cuda(op, out, a, s, scalar_first));
  else binary_scalar_kernel_cpu(op, out, a, s, scalar_first);
}

void elementwise_where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b, double scalar) {
  if (out.is_cuda()) TS_CUDA_CALL(where_kernel_cuda(out, cond, a, b, scalar));
  else where_kernel_cpu(out, cond, a, b, scalar);
}

}  // namespace tessera
