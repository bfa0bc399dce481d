// The MPI world and the collectives on host tensors (distributed/dist.h).
#include "distributed/dist.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "autograd/ops.h"
#include "distributed/nccl.h"

#if TESSERA_HAS_MPI
#include <mpi.h>
#endif

namespace tessera::dist {

namespace {

struct World {
  bool initialized = false, owns_mpi = false;
  int rank = 0, size = 1, local_rank = 0;
};
World& world() {
  static World w;
  return w;
}

// True for a GPU tensor (NCCL's); checks a host one for MPI.
bool on_gpu(const char* op, const Tensor& t) {
  TS_CHECK(t.defined(), op, ": the tensor is undefined");
  TS_CHECK(t.is_contiguous(), op, ": the tensor must be contiguous");
  return t.device().is_cuda();
}

#if TESSERA_HAS_MPI
MPI_Datatype mpi_type(DType d, const char* op) {
  switch (d) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int64: return MPI_INT64_T;
    case DType::Int32: return MPI_INT32_T;
    case DType::UInt8: return MPI_UINT8_T;
    default: break;
  }
  TS_ERROR(op, ": dtype ", dtype_name(d), " is not supported");
}

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  TS_ERROR(what, " failed on rank ", world().rank, ": ", std::string(text, static_cast<size_t>(len)));
}

void require_init(const char* op) {
  TS_CHECK(world().initialized, op, ": call tessera::dist::init() first");
}
#endif

}  // namespace

bool built_with_mpi() { return TESSERA_HAS_MPI != 0; }

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

void init() {
  World& w = world();
  if (w.initialized) return;
#if TESSERA_HAS_MPI
  int already = 0;
  MPI_Initialized(&already);
  if (!already) {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    w.owns_mpi = true;
  }
  // Errors come back as codes (and become tessera::Error) instead of aborting inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w.rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &w.local_rank);
  MPI_Comm_free(&local);
#else
  TS_CHECK(!launched_by_mpi(), "dist::init: this process was started by an MPI launcher, but tessera was built without "
           "MPI (apt-get install libopenmpi-dev, then reconfigure with -DTESSERA_MPI=ON)");
#endif
  w.initialized = true;
}

void finalize() {
  World& w = world();
  if (!w.initialized) return;
  nccl::shutdown(false);
#if TESSERA_HAS_MPI
  int done = 0;
  MPI_Finalized(&done);
  if (w.owns_mpi && !done) MPI_Finalize();
#endif
  w = World{};
}

bool is_initialized() { return world().initialized; }
int rank() { return world().rank; }
int world_size() { return world().size; }
int local_rank() { return world().local_rank; }
bool is_main() { return world().rank == 0; }

void all_reduce(Tensor& t, ReduceOp op) {
  if (on_gpu("all_reduce", t)) return nccl::all_reduce(t, op);
#if TESSERA_HAS_MPI
  require_init("all_reduce");
  if (world().size > 1) {
    const MPI_Op mop = op == ReduceOp::Max ? MPI_MAX : MPI_SUM;
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t.dtype(), "all_reduce"),
                            mop, MPI_COMM_WORLD),
              "MPI_Allreduce");
  }
#endif
  if (op == ReduceOp::Avg && world_size() > 1) {
    TS_CHECK(is_floating(t.dtype()), "all_reduce: Avg needs a floating dtype, got ", dtype_name(t.dtype()));
    t.copy_(tessera::div(t, static_cast<double>(world_size())));
  }
}

void broadcast(Tensor& t, int root) {
  const bool gpu = on_gpu("broadcast", t);
  TS_CHECK(root >= 0 && root < world_size(), "broadcast: root ", root, " is not a rank of a world of ", world_size());
  if (gpu) return nccl::broadcast(t, root);
#if TESSERA_HAS_MPI
  require_init("broadcast");
  if (world().size > 1)
    check_mpi(MPI_Bcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t.dtype(), "broadcast"), root, MPI_COMM_WORLD),
              "MPI_Bcast");
#endif
}

Tensor all_gather(const Tensor& t_in) {
  TS_CHECK(t_in.defined(), "all_gather: the tensor is undefined");
  Tensor t = t_in.contiguous();
  Shape shape = t.shape();
  shape.insert(shape.begin(), world_size());
  Tensor out = empty(shape, options(t.dtype(), t.device()));
  if (on_gpu("all_gather", t)) {
    nccl::all_gather(t, out);
    return out;
  }
#if TESSERA_HAS_MPI
  require_init("all_gather");
  if (world().size > 1) {
    const MPI_Datatype type = mpi_type(t.dtype(), "all_gather");
    check_mpi(MPI_Allgather(t.data_ptr(), static_cast<int>(t.numel()), type, out.data_ptr(), static_cast<int>(t.numel()),
                            type, MPI_COMM_WORLD),
              "MPI_Allgather");
    return out;
  }
#endif
  out.select(0, 0).copy_(t);
  return out;
}

std::vector<std::string> all_gather_bytes(const std::string& mine) {
  const std::vector<int64_t> sizes = all_gather(from_vector<int64_t>({static_cast<int64_t>(mine.size())})).to_vector<int64_t>();
  const int64_t longest = std::max<int64_t>(1, *std::max_element(sizes.begin(), sizes.end()));
  Tensor padded = zeros({longest}, options(kUInt8, kCPU));
  std::copy(mine.begin(), mine.end(), static_cast<char*>(padded.data_ptr()));
  const Tensor all = all_gather(padded);
  const char* base = static_cast<const char*>(all.data_ptr());
  std::vector<std::string> out;
  for (size_t r = 0; r < sizes.size(); ++r) out.emplace_back(base + static_cast<int64_t>(r) * longest, static_cast<size_t>(sizes[r]));
  return out;
}

void barrier() {
#if TESSERA_HAS_MPI
  if (world().initialized && world().size > 1) check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

#if TESSERA_HAS_MPI
namespace {
struct MpiPending final : Work::Pending {
  MPI_Request request = MPI_REQUEST_NULL;
  void wait() override { check_mpi(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait"); }
  bool done() override {
    int flag = 0;
    check_mpi(MPI_Test(&request, &flag, MPI_STATUS_IGNORE), "MPI_Test");
    return flag != 0;
  }
};
}  // namespace
#endif

Work all_reduce_sum_async(Tensor& t) {
  if (on_gpu("all_reduce_sum_async", t)) return nccl::all_reduce_sum_async(t);
#if TESSERA_HAS_MPI
  require_init("all_reduce_sum_async");
  if (world().size > 1) {
    auto pending = std::make_shared<MpiPending>();
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()),
                             mpi_type(t.dtype(), "all_reduce_sum_async"), MPI_SUM, MPI_COMM_WORLD, &pending->request),
              "MPI_Iallreduce");
    return Work(pending);
  }
#endif
  return Work();
}

void Work::wait() {
  if (pending_) pending_->wait();
  pending_.reset();
}

bool Work::test() {
  if (pending_ && pending_->done()) pending_.reset();
  return pending_ == nullptr;
}

void abort(const std::string& why) {
  std::fprintf(stderr, "rank %d of %d: %s\n", rank(), world_size(), why.c_str());
  std::fflush(stderr);
#if TESSERA_HAS_MPI
  int up = 0, down = 0;
  MPI_Initialized(&up);
  MPI_Finalized(&down);
  if (up && !down) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
  std::exit(1);
}

}  // namespace tessera::dist
