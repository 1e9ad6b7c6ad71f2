#pragma once
// NCCL collectives for CUDA tensors, behind the MPI communicator: when oodtrain is built with
// NCCL (OODT_WITH_NCCL, found under /usr/local/cuda or CUDA_HOME), the first collective on a
// CUDA tensor creates a channel over the same ranks, bootstrapped by broadcasting NCCL's unique
// id over MPI; CPU tensors keep going over MPI. Without NCCL, CUDA tensors are staged through
// host memory and reduced over MPI.
//
// Ordering: every call records an event on the compute stream (LibTorch's current stream when
// built against a CUDA LibTorch, else the legacy default stream, which is LibTorch's default),
// makes the channel's own stream wait for it, enqueues the NCCL call there, and makes the
// compute stream wait for its completion. The host never blocks; kernels queued afterwards on
// the compute stream see the result.
#include <memory>

#include "core/torch_fwd.h"

namespace oodt {

enum class ReduceOp;

class NcclChannel {
 public:
  virtual ~NcclChannel() = default;
  virtual void all_reduce(at::Tensor& t, ReduceOp op) = 0;
  virtual void broadcast(at::Tensor& t, int root) = 0;
  // `out` has shape [world, ...t.shape] on t's device.
  virtual void all_gather(const at::Tensor& t, at::Tensor& out) = 0;
};

// True when this build has NCCL.
bool nccl_compiled();
// A channel over the ranks of the MPI communicator `mpi_comm` (an MPI_Comm passed as a
// pointer to keep mpi.h out of this header), for tensors on CUDA device `device_index`.
// A collective: every rank of the communicator calls it. nullptr when NCCL is not compiled.
std::unique_ptr<NcclChannel> make_nccl_channel(const void* mpi_comm, int device_index);

}  // namespace oodt
