#include "core/agreement.h"

#include <algorithm>

#include "core/comm.h"
#include "core/error.h"

namespace oodt {

int StepAgreement::add(const std::string& name) {
  OODT_CHECK(std::find(names_.begin(), names_.end(), name) == names_.end(), "step agreement flag '", name,
             "' added twice");
  names_.push_back(name);
  local_.push_back(0.0);
  agreed_.push_back(0.0);
  return static_cast<int>(names_.size()) - 1;
}

void StepAgreement::raise(int flag, double value) {
  OODT_CHECK(value >= 0, "step agreement flag '", names_.at(static_cast<size_t>(flag)), "': values are >= 0");
  double& v = local_.at(static_cast<size_t>(flag));
  v = std::max(v, value);
}

void StepAgreement::agree(Communicator& comm) {
  if (local_.empty()) return;
  if (comm.world_size() == 1) {
    agreed_ = local_;
  } else {
    CollectiveContext ctx("step agreement");
    at::Tensor t = at::tensor(local_, at::kDouble);
    comm.all_reduce(t, ReduceOp::Max);
    const auto* v = t.data_ptr<double>();
    agreed_.assign(v, v + t.numel());
  }
  std::fill(local_.begin(), local_.end(), 0.0);
}

}  // namespace oodt
