#include "core/nccl.h"

#include <mpi.h>

#include "core/comm.h"
#include "core/error.h"

#if OODT_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#if OODT_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif
#endif

namespace oodt {

#if OODT_WITH_NCCL
namespace {

void cuda_check(cudaError_t rc, const char* call) {
  OODT_CHECK(rc == cudaSuccess, call, " failed: ", cudaGetErrorString(rc));
}
void nccl_check(ncclResult_t rc, const char* call) {
  OODT_CHECK(rc == ncclSuccess, call, " failed: ", ncclGetErrorString(rc));
}

ncclDataType_t nccl_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kHalf: return ncclFloat16;
    case at::kBFloat16: return ncclBfloat16;
    case at::kLong: return ncclInt64;
    case at::kInt: return ncclInt32;
    case at::kByte: return ncclUint8;
    case at::kChar: return ncclInt8;
    case at::kBool: return ncclUint8;
    default: OODT_CHECK(false, "NCCL channel: unsupported dtype ", t.dtype());
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Min: return ncclMin;
  }
  return ncclSum;
}

cudaStream_t compute_stream(int device) {
#if OODT_TORCH_CUDA
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
#else
  (void)device;
  return nullptr;  // the legacy default stream: LibTorch's default
#endif
}

class Channel final : public NcclChannel {
 public:
  Channel(MPI_Comm mpi, int device) : device_(device) {
    int rank = 0, world = 1;
    MPI_Comm_rank(mpi, &rank);
    MPI_Comm_size(mpi, &world);
    ncclUniqueId id;
    if (rank == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    OODT_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, mpi) == MPI_SUCCESS, "MPI_Bcast of the NCCL id failed");
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    nccl_check(ncclCommInitRank(&comm_, world, id, rank), "ncclCommInitRank");
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    cuda_check(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreate");
    cuda_check(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~Channel() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    ncclCommDestroy(comm_);
    cudaEventDestroy(ready_);
    cudaEventDestroy(done_);
    cudaStreamDestroy(stream_);
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  void all_reduce(at::Tensor& t, ReduceOp op) override {
    ordered(t, [&] {
      nccl_check(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), nccl_op(op),
                               comm_, stream_),
                 "ncclAllReduce");
    });
  }
  void broadcast(at::Tensor& t, int root) override {
    ordered(t, [&] {
      nccl_check(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), root, comm_,
                               stream_),
                 "ncclBroadcast");
    });
  }
  void all_gather(const at::Tensor& t, at::Tensor& out) override {
    ordered(t, [&] {
      nccl_check(ncclAllGather(t.data_ptr(), out.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), comm_,
                               stream_),
                 "ncclAllGather");
    });
  }

 private:
  // compute stream -> ready -> channel stream (the NCCL call) -> done -> compute stream.
  template <typename Fn>
  void ordered(const at::Tensor& t, Fn fn) {
    OODT_CHECK(t.is_cuda() && t.is_contiguous(), "NCCL channel: needs a contiguous CUDA tensor");
    OODT_CHECK(t.device().index() == device_, "NCCL channel: tensor on cuda:", static_cast<int>(t.device().index()),
               ", channel on cuda:", device_);
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    const cudaStream_t compute = compute_stream(device_);
    cuda_check(cudaEventRecord(ready_, compute), "cudaEventRecord");
    cuda_check(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent");
    fn();
    cuda_check(cudaEventRecord(done_, stream_), "cudaEventRecord");
    cuda_check(cudaStreamWaitEvent(compute, done_, 0), "cudaStreamWaitEvent");
  }

  int device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
};

}  // namespace

bool nccl_compiled() { return true; }

std::unique_ptr<NcclChannel> make_nccl_channel(const void* mpi_comm, int device_index) {
  return std::make_unique<Channel>(*static_cast<const MPI_Comm*>(mpi_comm), device_index);
}

#else

bool nccl_compiled() { return false; }
std::unique_ptr<NcclChannel> make_nccl_channel(const void*, int) { return nullptr; }

#endif

}  // namespace oodt
