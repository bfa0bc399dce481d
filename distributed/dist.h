// tessera::dist — processes that train together: the world (rank, size, local rank) and the
// collectives on tensors, on the engines people already run: MPI (Open MPI) for tensors in host
// memory, within a machine and across machines. Built when MPI is found (-DTESSERA_MPI=AUTO|ON|OFF);
// without it, the world is one process and every collective is the identity.
//
// A program started by mpirun calls init() once; every rank then calls the same collectives in the
// same order, on tensors of the same shape and dtype (the MPI rule). A rank that raises calls
// abort(), which ends every rank at once with its message instead of leaving them waiting.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera::dist {

bool built_with_mpi();
// True when this process was started by an MPI launcher (mpirun / mpiexec / srun with PMI).
bool launched_by_mpi();

// Joins the world: MPI_Init_thread (MPI_THREAD_FUNNELED) unless MPI is initialised already; a
// program not started by a launcher is a world of one. Idempotent. finalize() at exit.
void init();
void finalize();
bool is_initialized();
int rank();
int world_size();
int local_rank();  // rank among the processes of this machine: the GPU to use
bool is_main();    // rank() == 0: the one that prints and writes files

enum class ReduceOp { Sum, Avg, Max };

// Tensors in host memory go through MPI; tensors on a GPU through NCCL (libnccl.so.2, loaded on the
// first collective on a GPU tensor; its communicator is made once, from an id that rank 0 creates
// and broadcasts over MPI), one GPU per rank, ordered on the tensor's stream.
//
// In place on every rank; `t` contiguous, float32/float64/int64/int32/uint8.
void all_reduce(Tensor& t, ReduceOp op = ReduceOp::Sum);
// Root's values to every rank, in place.
void broadcast(Tensor& t, int root = 0);
// Every rank's `t` (same shape) stacked along a new first dim: [world_size, ...t.shape].
Tensor all_gather(const Tensor& t);
void barrier();
// Every rank's bytes (any length, also none), in rank order, on every rank.
std::vector<std::string> all_gather_bytes(const std::string& mine);

// A sum all-reduce in flight (MPI_Iallreduce on the CPU; on CUDA, NCCL on a communication stream
// that waits for the tensor's stream): wait() completes it (on CUDA: the tensor's stream waits for
// it, the host does not). Ranks must start them in the same order; `t` must live until wait().
class Work {
 public:
  struct Pending {
    virtual ~Pending() = default;
    virtual void wait() = 0;
    virtual bool done() = 0;  // lets the transfer progress; true once complete
  };
  Work() = default;
  explicit Work(std::shared_ptr<Pending> pending) : pending_(std::move(pending)) {}
  void wait();
  // True once the transfer is complete (MPI_Test / cudaEventQuery).
  bool test();

 private:
  std::shared_ptr<Pending> pending_;
};
Work all_reduce_sum_async(Tensor& t);

// Ends every rank now: prints "rank R: <why>" and calls MPI_Abort (exit code 1). Without MPI, exits.
[[noreturn]] void abort(const std::string& why);

}  // namespace tessera::dist
