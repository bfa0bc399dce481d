// The backward engine: counts each node's incoming edges reachable from the roots, then runs
// nodes whose gradients are complete, latest-created first, summing gradients that meet.
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "core/view.h"
#include "kernels/elementwise.h"

namespace tessera {

namespace {
std::atomic<uint64_t> next_sequence_nr{0};
}

Node::Node() : sequence_nr(next_sequence_nr.fetch_add(1, std::memory_order_relaxed)) {}

Node::~Node() {
  // The outermost destructor on this thread owns a work list; nested ones only hand it their edges.
  thread_local std::vector<std::shared_ptr<Node>>* pending = nullptr;
  const bool owner = pending == nullptr;
  std::vector<std::shared_ptr<Node>> list;
  if (owner) pending = &list;
  for (Edge& e : next_edges)
    if (e.node) pending->push_back(std::move(e.node));
  next_edges.clear();
  if (!owner) return;
  while (!list.empty()) {
    std::shared_ptr<Node> n = std::move(list.back());
    list.pop_back();
    n.reset();  // may run ~Node of n, which appends n's edges to `list`
  }
  pending = nullptr;
}

SavedTensor::SavedTensor(const Tensor& t) {
  if (!t.defined()) return;
  data_ = t.detach();
  version_ = t.storage()->version();
}

Tensor SavedTensor::get() const {
  if (!data_.defined()) return data_;
  TS_CHECK(data_.storage()->version() == version_,
           "a tensor needed for backward (", data_.str(), ") was modified by an in-place operation after it was "
           "saved; the gradient would be wrong. Clone it before modifying it.");
  return data_;
}

std::vector<Tensor> FunctionNode::apply(std::vector<Tensor>& grads) {
  TS_CHECK(!released_ && fn_, "trying to backward through the graph a second time (", name_,
           "'s saved tensors were freed after the first backward); pass retain_graph=true to the first backward "
           "if you need to backward twice");
  return fn_(grads);
}

void FunctionNode::release() {
  released_ = true;
  fn_ = nullptr;  // destroys the captured saved tensors
}

AccumulateGrad::AccumulateGrad(const Tensor& leaf) : leaf_(leaf) {
  outputs.push_back({leaf.shape(), leaf.dtype(), leaf.device()});
}

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>& grads) {
  const Tensor& g = grads[0];
  Tensor current = leaf_.grad();
  if (!current.defined()) {
    // A private copy: the incoming gradient may be shared with other leaves or the graph.
    leaf_.set_grad(raw::clone(g));
  } else {
    elementwise_binary(BinaryOp::Add, current, current, g);
    current.storage()->bump_version();
  }
  // The engine runs this node once per backward, after every gradient for the leaf has been
  // summed into `g`: the leaf's gradient is final for this pass.
  if (leaf_.impl()->autograd)
    for (const auto& hook : leaf_.impl()->autograd->post_accumulate_hooks) hook(leaf_);
  return {};
}

void register_post_accumulate_grad_hook(const Tensor& leaf, std::function<void(const Tensor&)> hook) {
  TS_CHECK(leaf.defined() && leaf.requires_grad(), "register_post_accumulate_grad_hook: the tensor does not require grad");
  TS_CHECK(!leaf.impl()->autograd->grad_fn, "register_post_accumulate_grad_hook: the tensor is not a leaf (it has a grad_fn)");
  leaf.impl()->autograd->post_accumulate_hooks.push_back(std::move(hook));
}

void clear_post_accumulate_grad_hooks(const Tensor& leaf) {
  if (leaf.defined() && leaf.impl()->autograd) leaf.impl()->autograd->post_accumulate_hooks.clear();
}

namespace {
thread_local std::vector<std::function<void()>>* g_backward_callbacks = nullptr;
}  // namespace

void queue_backward_callback(std::function<void()> fn) {
  TS_CHECK(g_backward_callbacks != nullptr, "queue_backward_callback: no backward is running on this thread");
  g_backward_callbacks->push_back(std::move(fn));
}

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  AutogradMeta& meta = *t.impl()->autograd;
  if (meta.grad_fn) return {meta.grad_fn, meta.output_nr};
  std::shared_ptr<Node> acc = meta.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t);
    meta.grad_accumulator = acc;
  }
  return {acc, 0};
}

void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            FunctionNode::Fn fn) {
  auto node = std::make_shared<FunctionNode>(name, std::move(fn));
  node->next_edges.reserve(inputs.size());
  for (const Tensor& t : inputs) node->next_edges.push_back(gradient_edge(t));
  for (uint32_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    node->outputs.push_back({out.shape(), out.dtype(), out.device()});
    if (!is_floating(out.dtype())) continue;  // integer outputs (indices) carry no gradient
    TensorImpl* impl = out.impl();
    if (!impl->autograd) impl->autograd = std::make_unique<AutogradMeta>();
    impl->autograd->requires_grad = true;
    impl->autograd->grad_fn = node;
    impl->autograd->output_nr = i;
  }
}

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads, bool retain_graph) {
  TS_CHECK(roots.size() == root_grads.size(), "backward: ", roots.size(), " roots but ", root_grads.size(), " gradients");
  struct ByLatest {
    bool operator()(const Node* a, const Node* b) const { return a->sequence_nr < b->sequence_nr; }
  };
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  std::unordered_map<Node*, int> dependencies;
  std::vector<std::shared_ptr<Node>> keep_alive;

  auto accumulate = [&](const Edge& e, const Tensor& g) {
    std::vector<Tensor>& buf = buffers[e.node.get()];
    if (buf.empty()) buf.resize(e.node->outputs.size());
    Tensor& slot = buf[e.input_nr];
    if (!slot.defined()) {
      slot = g;
    } else {
      Tensor sum = raw::empty(slot.shape(), slot.dtype(), slot.device());
      elementwise_binary(BinaryOp::Add, sum, slot, g);
      slot = sum;
    }
  };

  // Seed the roots.
  std::vector<Edge> root_edges;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& root = roots[i];
    TS_CHECK(root.defined(), "backward: the tensor is undefined");
    TS_CHECK(root.requires_grad(), "backward: the tensor does not require grad and has no grad_fn (",
             root.str(), "); did you forget requires_grad_() or call it under NoGradGuard?");
    Tensor g = root_grads[i];
    if (!g.defined()) {
      TS_CHECK(root.numel() == 1, "backward: a gradient can be implicitly created only for a scalar output; this one has "
               "shape ", shape_str(root.shape()), " (pass a gradient of that shape)");
      g = ones(root.shape(), options(root.dtype(), root.device()));
    }
    TS_CHECK(g.shape() == root.shape(), "backward: the gradient has shape ", shape_str(g.shape()),
             " but the tensor has shape ", shape_str(root.shape()));
    TS_CHECK(g.device() == root.device(), "backward: the gradient is on ", g.device(), " but the tensor is on ", root.device());
    if (g.dtype() != root.dtype()) g = raw::to(g, root.dtype());
    Edge e = gradient_edge(root);
    accumulate(e, g.detach());
    root_edges.push_back(e);
  }

  // Count incoming edges of every node reachable from the roots.
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  for (const Edge& e : root_edges)
    if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.valid()) continue;
      dependencies[e.node.get()] += 1;
      if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
    }
  }

  std::priority_queue<Node*, std::vector<Node*>, ByLatest> ready;
  std::unordered_set<Node*> queued;
  for (const Edge& e : root_edges)
    if (dependencies[e.node.get()] == 0 && queued.insert(e.node.get()).second) ready.push(e.node.get());

  NoGradGuard no_grad;
  std::vector<std::function<void()>> callbacks;
  auto* outer_callbacks = g_backward_callbacks;  // a backward inside a hook keeps its own list
  g_backward_callbacks = &callbacks;
  struct Restore {
    std::vector<std::function<void()>>* previous;
    ~Restore() { g_backward_callbacks = previous; }
  } restore{outer_callbacks};
  while (!ready.empty()) {
    Node* node = ready.top();
    ready.pop();
    std::vector<Tensor> grads = std::move(buffers[node]);
    buffers.erase(node);
    bool any = false;
    for (const Tensor& g : grads) any = any || g.defined();
    std::vector<Tensor> input_grads;
    if (any) {
      grads.resize(node->outputs.size());
      for (size_t i = 0; i < grads.size(); ++i)
        if (!grads[i].defined()) {
          const auto& m = node->outputs[i];
          grads[i] = zeros(m.shape, options(m.dtype, m.device));
        }
      input_grads = node->apply(grads);
      TS_CHECK(input_grads.empty() || input_grads.size() == node->next_edges.size(), node->name(), " returned ",
               input_grads.size(), " gradients for ", node->next_edges.size(), " inputs");
    }
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const Edge& e = node->next_edges[i];
      if (!e.valid()) continue;
      if (i < input_grads.size() && input_grads[i].defined()) {
        Tensor g = input_grads[i];
        const auto& m = e.node->outputs[e.input_nr];
        TS_CHECK(g.shape() == m.shape, node->name(), " produced a gradient of shape ", shape_str(g.shape()),
                 " for input ", i, " of shape ", shape_str(m.shape), " (an autograd bug)");
        if (g.dtype() != m.dtype) g = raw::to(g, m.dtype);
        accumulate(e, g);
      }
      if (--dependencies[e.node.get()] == 0 && queued.insert(e.node.get()).second) ready.push(e.node.get());
    }
    if (!retain_graph) node->release();
  }
  for (size_t i = 0; i < callbacks.size(); ++i) callbacks[i]();  // a callback may queue another
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  run_backward({*this}, {gradient}, retain_graph);
}

}  // namespace tessera
