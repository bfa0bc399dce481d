// NCCL for tessera::dist's GPU tensors (distributed/nccl.h). CUDA builds with nccl.h only; otherwise every
// entry is an Error naming why.
#include "distributed/nccl.h"

#if TESSERA_HAS_CUDA && defined(TESSERA_HAS_NCCL)
#define TESSERA_NCCL_BACKEND 1
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <mutex>

#include "core/cuda/check.h"
#include "core/cuda/context.h"
#include "core/dynlib.h"
#endif

namespace tessera::dist::nccl {

#ifdef TESSERA_NCCL_BACKEND

namespace {

struct Api {
  decltype(&::ncclGetVersion) get_version;
  decltype(&::ncclGetUniqueId) get_unique_id;
  decltype(&::ncclCommInitRank) comm_init_rank;
  decltype(&::ncclCommDestroy) comm_destroy;
  decltype(&::ncclCommAbort) comm_abort;
  decltype(&::ncclGetErrorString) error_string;
  decltype(&::ncclAllReduce) all_reduce;
  decltype(&::ncclBroadcast) broadcast;
  decltype(&::ncclAllGather) all_gather;
};

// libnccl.so.2 from the run path / LD_LIBRARY_PATH (the nvidia-nccl Python package's lib on
// machines with PyTorch), then the CUDA toolkit's folder it was built against.
const Api& api() {
  static const Api a = [] {
#ifdef TESSERA_NCCL_DIR
    const char* fallback = TESSERA_NCCL_DIR;
#else
    const char* fallback = nullptr;
#endif
    void* lib = open_library("libnccl.so.2", fallback, "NCCL, for collectives on GPU tensors",
                                   "the CUDA toolkit's lib, or the nvidia-nccl Python package's lib");
    Api x{};
    bind_symbol(lib, "ncclGetVersion", x.get_version, "NCCL");
    bind_symbol(lib, "ncclGetUniqueId", x.get_unique_id, "NCCL");
    bind_symbol(lib, "ncclCommInitRank", x.comm_init_rank, "NCCL");
    bind_symbol(lib, "ncclCommDestroy", x.comm_destroy, "NCCL");
    bind_symbol(lib, "ncclCommAbort", x.comm_abort, "NCCL");
    bind_symbol(lib, "ncclGetErrorString", x.error_string, "NCCL");
    bind_symbol(lib, "ncclAllReduce", x.all_reduce, "NCCL");
    bind_symbol(lib, "ncclBroadcast", x.broadcast, "NCCL");
    bind_symbol(lib, "ncclAllGather", x.all_gather, "NCCL");
    int version = 0;
    x.get_version(&version);
    TS_CHECK(version >= 21000, "NCCL ", version, " is too old: tessera needs 2.10 or newer (ncclAvg)");
    return x;
  }();
  return a;
}

void check(ncclResult_t rc, const char* what) {
  TS_CHECK(rc == ncclSuccess, what, " failed on rank ", rank(), ": ", api().error_string(rc));
}

// The process's communicator: one GPU per rank, the device of the first GPU tensor.
struct Comm {
  std::mutex mu;
  ncclComm_t comm = nullptr;
  int device = -1;
  cudaStream_t side = nullptr;  // for the asynchronous all-reduces
};
Comm& state() {
  static Comm c;
  return c;
}

ncclComm_t comm_for(const Tensor& t, const char* op) {
  TS_CHECK(t.defined() && t.device().is_cuda(), op, ": expected a tensor on a GPU");
  TS_CHECK(t.is_contiguous(), op, ": the tensor must be contiguous");
  TS_CHECK(is_initialized(), op, ": call tessera::dist::init() first");
  Comm& c = state();
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.comm == nullptr) {
    const Api& a = api();
    // Rank 0's id, to every rank over MPI (host memory).
    Tensor id = zeros({static_cast<int64_t>(sizeof(ncclUniqueId))}, options(kUInt8, kCPU));
    ncclUniqueId uid;
    if (rank() == 0) {
      check(a.get_unique_id(&uid), "ncclGetUniqueId");
      std::memcpy(id.data_ptr(), &uid, sizeof(uid));
    }
    dist::broadcast(id, 0);
    std::memcpy(&uid, id.data_ptr(), sizeof(uid));
    cuda::DeviceGuard guard(t.device().index);
    check(a.comm_init_rank(&c.comm, world_size(), uid, rank()), "ncclCommInitRank");
    c.device = t.device().index;
  }
  TS_CHECK(t.device().index == c.device, op, ": a tensor on cuda:", t.device().index, ", but this rank's NCCL communicator is on cuda:",
           c.device, " (one GPU per rank: pick it from dist::local_rank())");
  return c.comm;
}

ncclDataType_t nccl_type(DType d, const char* op) {
  switch (d) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::Int64: return ncclInt64;
    case DType::Int32: return ncclInt32;
    case DType::UInt8: return ncclUint8;
    case DType::Float16: return ncclFloat16;
    case DType::BFloat16: return ncclBfloat16;
    default: break;
  }
  TS_ERROR(op, ": dtype ", dtype_name(d), " is not supported");
}

ncclRedOp_t nccl_op(ReduceOp op, DType d) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Avg:
      TS_CHECK(is_floating(d), "all_reduce: Avg needs a floating dtype, got ", dtype_name(d));
      return ncclAvg;
  }
  return ncclSum;
}

// Completion of an all-reduce on the side stream: the tensor's stream waits for its event.
struct NcclPending final : Work::Pending {
  int device = 0;
  cudaEvent_t done_event = nullptr;
  ~NcclPending() override {
    if (done_event != nullptr) cudaEventDestroy(done_event);
  }
  void wait() override {
    cuda::DeviceGuard guard(device);
    TS_CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(device), done_event, 0));
  }
  bool done() override {
    cuda::DeviceGuard guard(device);
    const cudaError_t rc = cudaEventQuery(done_event);
    if (rc == cudaErrorNotReady) return false;
    TS_CUDA_CHECK(rc);
    return true;
  }
};

}  // namespace

bool built() { return true; }

void all_reduce(Tensor& t, ReduceOp op) {
  ncclComm_t comm = comm_for(t, "all_reduce");
  cuda::DeviceGuard guard(t.device().index);
  check(api().all_reduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype(), "all_reduce"),
                         nccl_op(op, t.dtype()), comm, cuda::stream(t.device().index)),
        "ncclAllReduce");
}

void broadcast(Tensor& t, int root) {
  ncclComm_t comm = comm_for(t, "broadcast");
  cuda::DeviceGuard guard(t.device().index);
  check(api().broadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype(), "broadcast"), root,
                        comm, cuda::stream(t.device().index)),
        "ncclBroadcast");
}

void all_gather(const Tensor& t, Tensor& out) {
  ncclComm_t comm = comm_for(t, "all_gather");
  TS_CHECK(out.device() == t.device() && out.is_contiguous() && out.numel() == t.numel() * world_size(),
           "all_gather: internal: the output does not fit");
  cuda::DeviceGuard guard(t.device().index);
  check(api().all_gather(t.data_ptr(), out.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype(), "all_gather"), comm,
                         cuda::stream(t.device().index)),
        "ncclAllGather");
}

Work all_reduce_sum_async(Tensor& t) {
  ncclComm_t comm = comm_for(t, "all_reduce_sum_async");
  const int dev = t.device().index;
  cuda::DeviceGuard guard(dev);
  Comm& c = state();
  if (c.side == nullptr) TS_CUDA_CHECK(cudaStreamCreateWithFlags(&c.side, cudaStreamNonBlocking));
  // The side stream starts when the tensor's stream has produced the tensor.
  cudaEvent_t ready = nullptr;
  TS_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  TS_CUDA_CHECK(cudaEventRecord(ready, cuda::stream(dev)));
  TS_CUDA_CHECK(cudaStreamWaitEvent(c.side, ready, 0));
  TS_CUDA_CHECK(cudaEventDestroy(ready));  // released once recorded work completes
  check(api().all_reduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype(), "all_reduce_sum_async"),
                         ncclSum, comm, c.side),
        "ncclAllReduce");
  auto pending = std::make_shared<NcclPending>();
  pending->device = dev;
  TS_CUDA_CHECK(cudaEventCreateWithFlags(&pending->done_event, cudaEventDisableTiming));
  TS_CUDA_CHECK(cudaEventRecord(pending->done_event, c.side));
  return Work(pending);
}

void shutdown(bool abort) {
  Comm& c = state();
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.comm != nullptr) {
    if (abort) api().comm_abort(c.comm);
    else api().comm_destroy(c.comm);
    c.comm = nullptr;
  }
  if (c.side != nullptr && !abort) cudaStreamDestroy(c.side);
  c.side = nullptr;
  c.device = -1;
}

#else  // without CUDA, or without NCCL's header

namespace {
[[noreturn]] void no_gpu(const char* op) {
  TS_ERROR(op, ": collectives on GPU tensors need NCCL: tessera was built without CUDA or without nccl.h");
}
}  // namespace

bool built() { return false; }
void all_reduce(Tensor&, ReduceOp) { no_gpu("all_reduce"); }
void broadcast(Tensor&, int) { no_gpu("broadcast"); }
void all_gather(const Tensor&, Tensor&) { no_gpu("all_gather"); }
Work all_reduce_sum_async(Tensor&) { no_gpu("all_reduce_sum_async"); }
void shutdown(bool) {}

#endif

}  // namespace tessera::dist::nccl
