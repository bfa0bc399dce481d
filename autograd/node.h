// The autograd graph: a Node per recorded op, edges to the nodes that made its inputs, saved
// tensors with in-place checks, and AccumulateGrad for leaves.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/grad_mode.h"
#include "core/tensor.h"

namespace tessera {

class Node;

// Where a gradient goes: input `input_nr` of `node` (an output slot of the node that made it).
struct Edge {
  std::shared_ptr<Node> node;
  uint32_t input_nr = 0;
  bool valid() const { return node != nullptr; }
};

class Node {
 public:
  struct OutputMeta {
    Shape shape;
    DType dtype;
    Device device;
  };

  Node();
  // Releases the chain of nodes behind this one iteratively: a graph of 100k ops must not overflow
  // the stack through nested shared_ptr destructors.
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  virtual std::string name() const = 0;
  // Gradients w.r.t. this node's outputs (one per output, zeros filled in) -> gradients w.r.t.
  // its inputs (one per next edge; undefined where none is needed). Runs with grad mode off.
  virtual std::vector<Tensor> apply(std::vector<Tensor>& grads) = 0;
  // Drops saved tensors once a backward without retain_graph has passed through.
  virtual void release() { released_ = true; }
  bool released() const { return released_; }

  std::vector<Edge> next_edges;     // one per input of the op
  std::vector<OutputMeta> outputs;  // one per output of the op
  uint64_t sequence_nr;             // creation order: later nodes run first

 protected:
  bool released_ = false;
};

// A tensor kept for backward: detached (no reference cycle through grad_fn) and stamped with its
// storage's version, so that a later in-place write is caught instead of giving a wrong gradient.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  Tensor get() const;
  bool defined() const { return data_.defined(); }
  void reset() { data_ = Tensor(); }

 private:
  Tensor data_;
  uint64_t version_ = 0;
};

// Backward = a function from output gradients to input gradients (most ops use this).
class FunctionNode final : public Node {
 public:
  using Fn = std::function<std::vector<Tensor>(std::vector<Tensor>& grads)>;
  FunctionNode(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::string name() const override { return name_; }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override;
  void release() override;

 private:
  std::string name_;
  Fn fn_;
};

// Sums incoming gradients into a leaf's .grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(const Tensor& leaf);
  std::string name() const override { return "AccumulateGrad"; }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override;
  void release() override {}  // holds nothing that a second backward could miss
  const Tensor& leaf() const { return leaf_; }

 private:
  Tensor leaf_;
};

// Calls `hook(leaf)` each time a backward has produced the leaf's gradient for that pass (once per
// backward, after accumulating into leaf.grad()): what DistributedDataParallel starts its gradient
// all-reduce from, while the rest of the backward runs. `leaf` must be a leaf that requires grad.
void register_post_accumulate_grad_hook(const Tensor& leaf, std::function<void(const Tensor&)> hook);
// Removes every such hook of the leaf.
void clear_post_accumulate_grad_hooks(const Tensor& leaf);
// During a backward (from a hook): runs `fn` once the backward has finished, in queueing order.
void queue_backward_callback(std::function<void()> fn);

// True when grad mode is on and some input requires grad: the op must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// The edge a gradient for `t` must flow along (invalid when t does not require grad).
Edge gradient_edge(const Tensor& t);

// Records `fn` as the backward of an op with these inputs and outputs: outputs become non-leaf
// tensors that require grad, with the new node as grad_fn. Inputs may be undefined (no edge).
void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            FunctionNode::Fn fn);

// Runs the backward pass from `roots` with `grads` (engine.cpp).
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph);

}  // namespace tessera
