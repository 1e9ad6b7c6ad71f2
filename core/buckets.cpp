#include "core/buckets.h"

#include <numeric>

#include "core/comm.h"
#include "core/error.h"

namespace oodt {

std::vector<BucketSpec> plan_buckets(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& order,
                                     const BucketLimits& limits) {
  OODT_CHECK(order.size() == tensors.size(), "bucket plan: an order of ", order.size(), " for ", tensors.size(),
             " tensors");
  std::vector<BucketSpec> out;
  BucketSpec cur;
  int64_t cur_bytes = 0;
  auto flush = [&] {
    if (cur.members.empty()) return;
    out.push_back(std::move(cur));
    cur = BucketSpec{};
    cur_bytes = 0;
  };
  for (size_t i : order) {
    OODT_CHECK(i < tensors.size(), "bucket plan: index ", i, " out of range");
    const at::Tensor& t = tensors[i];
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    if (limits.in_place_bytes > 0 && bytes >= limits.in_place_bytes) {
      flush();
      cur.members.push_back(i);
      cur.in_place = true;
      cur.numel = t.numel();
      flush();
      continue;
    }
    const int64_t cap = out.empty() && limits.first_bucket_bytes > 0
                            ? std::min(limits.first_bucket_bytes, limits.bucket_bytes)
                            : limits.bucket_bytes;
    if (!cur.members.empty()) {
      const at::Tensor& first = tensors[cur.members.front()];
      if (first.scalar_type() != t.scalar_type() || first.device() != t.device() || cur_bytes + bytes > cap) flush();
    }
    cur.members.push_back(i);
    cur.numel += t.numel();
    cur_bytes += bytes;
  }
  flush();
  return out;
}

std::vector<BucketSpec> plan_buckets(const std::vector<at::Tensor>& tensors, const BucketLimits& limits) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  return plan_buckets(tensors, order, limits);
}

void bucketed(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, const std::function<void(at::Tensor&)>& op) {
  BucketLimits limits;
  limits.bucket_bytes = bucket_bytes;
  at::NoGradGuard no_grad;
  for (const BucketSpec& b : plan_buckets(tensors, limits)) {
    if (b.members.size() == 1 && tensors[b.members[0]].is_contiguous()) {
      at::Tensor t = tensors[b.members[0]];
      op(t);
      continue;
    }
    at::Tensor buffer = at::empty({b.numel}, tensors[b.members.front()].options());
    int64_t off = 0;
    for (size_t i : b.members) {
      const int64_t n = tensors[i].numel();
      buffer.narrow(0, off, n).copy_(tensors[i].reshape({-1}));
      off += n;
    }
    op(buffer);
    off = 0;
    for (size_t i : b.members) {
      const int64_t n = tensors[i].numel();
      at::Tensor dst = tensors[i];
      dst.copy_(buffer.narrow(0, off, n).view(dst.sizes()));
      off += n;
    }
  }
}

void broadcast_tensors(const std::vector<at::Tensor>& tensors, Communicator& comm, int root, int64_t bucket_bytes) {
  if (comm.world_size() == 1) return;
  bucketed(tensors, bucket_bytes, [&](at::Tensor& buf) { comm.broadcast(buf, root); });
}

void broadcast_module(torch::nn::Module& module, Communicator& comm, int root, int64_t bucket_bytes) {
  std::vector<at::Tensor> tensors;
  for (auto& p : module.parameters()) tensors.push_back(p);
  for (auto& b : module.buffers()) tensors.push_back(b);
  broadcast_tensors(tensors, comm, root, bucket_bytes);
}

void broadcast_buffers(torch::nn::Module& module, Communicator& comm, int root, int64_t bucket_bytes) {
  std::vector<at::Tensor> tensors;
  for (auto& b : module.buffers()) tensors.push_back(b);
  broadcast_tensors(tensors, comm, root, bucket_bytes);
}

void all_reduce_tensors(const std::vector<at::Tensor>& tensors, Communicator& comm, int64_t bucket_bytes, bool mean) {
  if (comm.world_size() == 1) return;
  const double scale = 1.0 / comm.world_size();
  bucketed(tensors, bucket_bytes, [&](at::Tensor& buf) {
    comm.all_reduce(buf, ReduceOp::Sum);
    if (mean) buf.mul_(scale);
  });
}

}  // namespace oodt
