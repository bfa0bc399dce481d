// tessera::dist on GPU tensors: NCCL (internal to dist/; the public API is dist/dist.h). libnccl
// is 218 MB: it is loaded with dlopen on the first collective on a GPU tensor, so that programs
// that never make one (every CPU run) do not map it, and CPU-only machines do not need it.
#pragma once

#include "distributed/dist.h"

namespace tessera::dist::nccl {

bool built();  // a CUDA build (NCCL's header was there)

// Stream-ordered on the tensor's device stream; the communicator is created on first use (rank 0
// makes the id, broadcast over MPI: a collective, so every rank must reach it).
void all_reduce(Tensor& t, ReduceOp op);
void broadcast(Tensor& t, int root);
void all_gather(const Tensor& t, Tensor& out);  // out: [world_size, ...t.shape] on t's device
Work all_reduce_sum_async(Tensor& t);           // on a communication stream (see Work)

// Destroys the communicator (finalize), or aborts it (abort: peers may be gone).
void shutdown(bool abort);

}  // namespace tessera::dist::nccl
