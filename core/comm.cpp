#include "core/comm.h"

#include <list>

#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "core/error.h"
#include "core/nccl.h"

namespace oodt {

double Communicator::all_reduce_scalar(double v, ReduceOp op) {
  at::Tensor t = at::full({1}, v, at::kDouble);
  all_reduce(t, op);
  return t.item<double>();
}

namespace {
thread_local std::vector<std::string> t_context;
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

CollectiveContext::CollectiveContext(std::string what) { t_context.push_back(std::move(what)); }
CollectiveContext::~CollectiveContext() { t_context.pop_back(); }
std::string CollectiveContext::current() {
  std::string s;
  for (const auto& c : t_context) s += (s.empty() ? "" : " / ") + c;
  return s;
}

Communicator::InFlight Communicator::record(const char* what, const at::Tensor& t) {
  Entry e;
  e.sequence = ++sequence_;
  e.what = what;
  if (t.defined()) {
    bytes_ += static_cast<uint64_t>(t.numel()) * t.element_size();
    e.has_tensor = true;
    e.sizes = t.sizes().vec();
    e.dtype = t.scalar_type();
  }
  e.context = CollectiveContext::current();
  {
    std::lock_guard<std::mutex> lock(ledger_mu_);
    ledger_.push_back(std::move(e));
    if (ledger_.size() > kLedger) ledger_.pop_front();
  }
  in_flight_since_ns_.store(now_ns());
  return InFlight{this};
}

std::string Communicator::format(const Entry& e) {
  std::string s = concat("#", e.sequence, " ", e.what);
  if (e.has_tensor) s += concat(" ", at::IntArrayRef(e.sizes), " ", c10::scalarTypeToTypeMeta(e.dtype));
  if (!e.context.empty()) s += " (" + e.context + ")";
  return s;
}

std::string Communicator::last_collective() const {
  std::lock_guard<std::mutex> lock(ledger_mu_);
  return ledger_.empty() ? std::string("none") : format(ledger_.back());
}

std::vector<std::string> Communicator::ledger() const {
  std::lock_guard<std::mutex> lock(ledger_mu_);
  std::vector<std::string> out;
  for (const Entry& e : ledger_) out.push_back(format(e));
  return out;
}

double Communicator::in_flight_seconds() const {
  const int64_t since = in_flight_since_ns_.load();
  return since == 0 ? 0.0 : static_cast<double>(now_ns() - since) * 1e-9;
}

namespace {
// Where this rank is, for a peer's watchdog.
std::string where_am_i(const Communicator& comm) {
  const double waited = comm.in_flight_seconds();
  return waited > 0 ? concat("waits ", static_cast<int>(waited), " s in collective ", comm.last_collective())
                    : concat("runs (its last collective: ", comm.last_collective(), ")");
}
}  // namespace

Watchdog::Watchdog(const Communicator& comm, double timeout_seconds) : comm_(comm), timeout_(timeout_seconds) {
  if (timeout_ <= 0 || comm_.world_size() == 1) return;
  probe_ = comm_.make_peer_probe();
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (probe_) probe_->answer(where_am_i(comm_));
      const double waited = comm_.in_flight_seconds();
      if (waited < timeout_) continue;
      std::string report = concat("oodtrain: watchdog [rank ", comm_.rank(), "/", comm_.world_size(), "]: waited ",
                                  static_cast<int>(waited), " s (dist.timeout_s: ", timeout_,
                                  ") in collective ", comm_.last_collective(),
                                  "; a peer died or entered a different collective.\n");
      if (probe_) {
        constexpr double kAnswerSeconds = 5;
        const auto answers = probe_->ask(where_am_i(comm_), kAnswerSeconds);
        std::string silent;
        for (int r = 0; r < comm_.world_size(); ++r) {
          if (r == comm_.rank()) continue;
          if (answers[static_cast<size_t>(r)].empty()) silent += concat(silent.empty() ? "" : ", ", r);
          else report += concat("  rank ", r, " ", answers[static_cast<size_t>(r)], "\n");
        }
        if (!silent.empty())
          report += concat("  rank(s) ", silent, " did not answer within ", kAnswerSeconds,
                           " s: stopped (SIGSTOP), hung outside any collective, or gone; ranks waiting for them "
                           "cannot go on\n");
      }
      report += "This rank's last collectives:\n";
      for (const auto& e : comm_.ledger()) report += "  rank " + std::to_string(comm_.rank()) + ": " + e + "\n";
      std::fputs(report.c_str(), stderr);
      std::fflush(stderr);
      // The other ranks are stuck too and report within a moment; then the job ends.
      std::this_thread::sleep_for(std::chrono::seconds(3));
      std::_Exit(3);
    }
  });
}

Watchdog::~Watchdog() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

namespace {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string backend() const override { return "local"; }
  void all_reduce(at::Tensor& t, ReduceOp) override { auto g = record("all_reduce", t); }
  void broadcast(at::Tensor& t, int) override { auto g = record("broadcast", t); }
  at::Tensor all_gather(const at::Tensor& t) override {
    auto g = record("all_gather", t);
    return t.unsqueeze(0).clone();
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
  std::unique_ptr<Communicator> split(int, int) override { return std::make_unique<LocalCommunicator>(); }
};

// float16 / bfloat16: 2-byte types summed through float32 by a user-defined MPI_Op (MPI has
// no 16-bit float types). Created on first use, after MPI_Init.
template <typename T>
void sum_through_float(void* in, void* inout, int* len, MPI_Datatype*) {
  const T* a = static_cast<const T*>(in);
  T* b = static_cast<T*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = T(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

struct Half16 {
  MPI_Datatype type = MPI_DATATYPE_NULL;
  MPI_Op sum = MPI_OP_NULL;
};

template <typename T>
const Half16& half16() {
  static const Half16 h = [] {
    Half16 r;
    MPI_Type_contiguous(2, MPI_BYTE, &r.type);
    MPI_Type_commit(&r.type);
    MPI_Op_create(&sum_through_float<T>, /*commute=*/1, &r.sum);
    return r;
  }();
  return h;
}

bool is_half16(const at::Tensor& t) { return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16; }

MPI_Datatype mpi_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kHalf: return half16<c10::Half>().type;
    case at::kBFloat16: return half16<c10::BFloat16>().type;
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kLong: return MPI_INT64_T;
    case at::kInt: return MPI_INT32_T;
    case at::kByte: return MPI_UINT8_T;
    case at::kChar: return MPI_INT8_T;
    case at::kBool: return MPI_C_BOOL;
    default: OODT_CHECK(false, "MPI communicator: unsupported dtype ", t.dtype());
  }
}

MPI_Op mpi_op(ReduceOp op, const at::Tensor& t) {
  if (is_half16(t)) {
    OODT_CHECK(op == ReduceOp::Sum, "MPI communicator: float16/bfloat16 tensors can only be summed");
    return t.scalar_type() == at::kHalf ? half16<c10::Half>().sum : half16<c10::BFloat16>().sum;
  }
  switch (op) {
    case ReduceOp::Sum: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
  }
  return MPI_SUM;
}

void mpi_check(int rc, const char* call) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    OODT_CHECK(false, call, " failed: ", std::string(msg, len));
  }
}

// PeerProbe over a duplicate of the communicator (its own message space): a rank's watchdog
// thread posts a receive for questions and answers them; an asking rank sends a question to
// every other rank and collects the answers with a deadline. Point-to-point messages only, so
// a rank stuck in a collective, or one stopped altogether, cannot block the asker.
class MpiPeerProbe final : public PeerProbe {
 public:
  explicit MpiPeerProbe(MPI_Comm comm) {
    mpi_check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &world_);
  }
  ~MpiPeerProbe() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (question_ != MPI_REQUEST_NULL) {
      MPI_Cancel(&question_);
      MPI_Wait(&question_, MPI_STATUS_IGNORE);
    }
    for (auto& a : answers_) MPI_Wait(&a.request, MPI_STATUS_IGNORE);
    MPI_Comm_free(&comm_);
  }

  void answer(const std::string& status) override {
    for (;;) {
      if (question_ == MPI_REQUEST_NULL)
        MPI_Irecv(&question_buf_, 1, MPI_INT, MPI_ANY_SOURCE, kAsk, comm_, &question_);
      int arrived = 0;
      MPI_Status st;
      MPI_Test(&question_, &arrived, &st);
      if (!arrived) break;
      answers_.push_back(Outgoing{});
      Outgoing& a = answers_.back();
      std::snprintf(a.text, sizeof a.text, "%s", status.c_str());
      MPI_Isend(a.text, sizeof a.text, MPI_CHAR, st.MPI_SOURCE, kAnswer, comm_, &a.request);
    }
    // Forget answers that have left.
    for (auto it = answers_.begin(); it != answers_.end();) {
      int done = 0;
      MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
      it = done ? answers_.erase(it) : std::next(it);
    }
  }

  std::vector<std::string> ask(const std::string& status, double seconds) override {
    std::vector<std::string> out(static_cast<size_t>(world_));
    std::vector<char> replies(static_cast<size_t>(world_) * kText, '\0');
    std::vector<MPI_Request> recv(static_cast<size_t>(world_), MPI_REQUEST_NULL),
        send(static_cast<size_t>(world_), MPI_REQUEST_NULL);
    int question = 1;
    for (int r = 0; r < world_; ++r) {
      if (r == rank_) continue;
      MPI_Irecv(replies.data() + static_cast<size_t>(r) * kText, kText, MPI_CHAR, r, kAnswer, comm_,
                &recv[static_cast<size_t>(r)]);
      MPI_Isend(&question, 1, MPI_INT, r, kAsk, comm_, &send[static_cast<size_t>(r)]);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    int pending = world_ - 1;
    while (pending > 0 && std::chrono::steady_clock::now() < deadline) {
      answer(status);  // the others are asking too
      for (int r = 0; r < world_; ++r) {
        MPI_Request& q = recv[static_cast<size_t>(r)];
        if (q == MPI_REQUEST_NULL) continue;
        int done = 0;
        MPI_Test(&q, &done, MPI_STATUS_IGNORE);
        if (!done) continue;
        out[static_cast<size_t>(r)] = std::string(replies.data() + static_cast<size_t>(r) * kText);
        if (out[static_cast<size_t>(r)].empty()) out[static_cast<size_t>(r)] = "answered";
        --pending;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    // The process ends right after a report: requests still open are left to MPI_Abort.
    return out;
  }

 private:
  static constexpr int kAsk = 7101, kAnswer = 7102, kText = 256;
  struct Outgoing {
    char text[kText] = {};
    MPI_Request request = MPI_REQUEST_NULL;
  };
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, world_ = 1;
  int question_buf_ = 0;
  MPI_Request question_ = MPI_REQUEST_NULL;
  std::list<Outgoing> answers_;  // a list: requests point into their text
};

bool g_thread_multiple = false;  // MPI granted MPI_THREAD_MULTIPLE (the watchdog's side channel)

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` unless it is MPI_COMM_WORLD.
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &world_);
    // Errors come back as codes, so they become exceptions with a message.
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm local;
    mpi_check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
              "MPI_Comm_split_type");
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm_ != MPI_COMM_WORLD && !finalized) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  std::unique_ptr<PeerProbe> make_peer_probe() const override {
    if (!g_thread_multiple) return nullptr;
    return std::make_unique<MpiPeerProbe>(comm_);
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    mpi_check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
    int size = 1;
    MPI_Comm_size(sub, &size);
    if (size == 1) {
      MPI_Comm_free(&sub);
      return make_local_communicator();
    }
    return std::make_unique<MpiCommunicator>(sub);
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string backend() const override { return "mpi"; }

  void all_reduce(at::Tensor& t, ReduceOp op) override {
    auto g = record("all_reduce", t);
    if (NcclChannel* nccl = channel(t)) return nccl->all_reduce(t, op);
    staged(t, [&](at::Tensor& h) {
      mpi_check(MPI_Allreduce(MPI_IN_PLACE, h.data_ptr(), count(h), mpi_type(h), mpi_op(op, h), comm_),
                "MPI_Allreduce");
    });
  }
  void all_reduce_background(at::Tensor& t, ReduceOp op) override {
    auto g = record("all_reduce", t);
    if (NcclChannel* nccl = channel(t)) return nccl->all_reduce(t, op);  // asynchronous already
    staged(t, [&](at::Tensor& h) {
      MPI_Request req;
      mpi_check(MPI_Iallreduce(MPI_IN_PLACE, h.data_ptr(), count(h), mpi_type(h), mpi_op(op, h), comm_, &req),
                "MPI_Iallreduce");
      // Spin briefly (a peer that is already there answers within microseconds), then poll
      // every 50 us: a spinning thread would take the core from this rank's backward pass.
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
      for (int done = 0;;) {
        mpi_check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        if (done) break;
        if (std::chrono::steady_clock::now() < spin_until) std::this_thread::yield();
        else std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    });
  }
  void broadcast(at::Tensor& t, int root) override {
    auto g = record("broadcast", t);
    if (NcclChannel* nccl = channel(t)) return nccl->broadcast(t, root);
    staged(t, [&](at::Tensor& h) {
      mpi_check(MPI_Bcast(h.data_ptr(), count(h), mpi_type(h), root, comm_), "MPI_Bcast");
    });
  }
  at::Tensor all_gather(const at::Tensor& t) override {
    if (t.is_cuda() && nccl_compiled()) {
      const at::Tensor src = t.contiguous();
      auto g = record("all_gather", src);
      std::vector<int64_t> shape{world_};
      for (auto s : src.sizes()) shape.push_back(s);
      at::Tensor out = at::empty(shape, src.options());
      channel(src)->all_gather(src, out);
      return out;
    }
    at::Tensor src = t.to(at::kCPU).contiguous();
    auto g = record("all_gather", src);
    std::vector<int64_t> shape{world_};
    for (auto s : src.sizes()) shape.push_back(s);
    at::Tensor out = at::empty(shape, src.options());
    mpi_check(MPI_Allgather(src.data_ptr(), count(src), mpi_type(src), out.data_ptr(), count(src), mpi_type(src),
                            comm_),
              "MPI_Allgather");
    return out.to(t.device());
  }
  void barrier() override {
    auto g = record("barrier", at::Tensor());
    mpi_check(MPI_Barrier(comm_), "MPI_Barrier");
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);  // the whole job, whichever group failed
    std::_Exit(code);
  }

 private:
  // The NCCL channel for a CUDA tensor when NCCL is compiled in (created by the first CUDA
  // collective, which every rank enters together), else nullptr.
  NcclChannel* channel(const at::Tensor& t) {
    if (!t.is_cuda() || !nccl_compiled()) return nullptr;
    if (!nccl_) nccl_ = make_nccl_channel(&comm_, t.device().index());
    return nccl_.get();
  }
  static int count(const at::Tensor& t) {
    OODT_CHECK(t.numel() <= INT32_MAX, "tensor too large for one MPI call: ", t.numel());
    return static_cast<int>(t.numel());
  }
  // Runs an in-place MPI operation on a contiguous host copy when `t` lives on a GPU (until
  // the NCCL backend takes CUDA tensors), or on `t` itself.
  template <typename Op>
  static void staged(at::Tensor& t, Op op) {
    OODT_CHECK(t.is_contiguous(), "collectives need contiguous tensors");
    if (t.device().is_cpu()) {
      op(t);
      return;
    }
    at::Tensor host = t.to(at::kCPU);
    op(host);
    t.copy_(host);
  }
  MPI_Comm comm_;
  std::unique_ptr<NcclChannel> nccl_;
  int rank_ = 0, world_ = 1, local_rank_ = 0, local_size_ = 1;
};

// Finalises MPI at process exit if we initialised it.
struct MpiLifetime {
  bool owned = false;
  ~MpiLifetime() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned && !finalized) MPI_Finalize();
  }
};
MpiLifetime g_mpi;

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

std::unique_ptr<Communicator> make_communicator() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // The gradient communication thread calls MPI while the main thread computes, but never
    // while the main thread is in MPI (SERIALIZED would do); the watchdog's side channel asks
    // peers while the main thread waits in a collective, which needs MULTIPLE. Without it the
    // watchdog still reports, only without the peers' answers.
    mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    OODT_CHECK(provided >= MPI_THREAD_SERIALIZED, "MPI grants thread level ", provided,
               "; oodtrain needs MPI_THREAD_SERIALIZED (a communication thread)");
    g_thread_multiple = provided >= MPI_THREAD_MULTIPLE;
    g_mpi.owned = true;
  } else {
    int provided = 0;
    MPI_Query_thread(&provided);
    OODT_CHECK(provided >= MPI_THREAD_SERIALIZED, "MPI was initialised with thread level ", provided,
               "; oodtrain needs MPI_THREAD_SERIALIZED (a communication thread)");
    g_thread_multiple = provided >= MPI_THREAD_MULTIPLE;
  }
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world == 1) return make_local_communicator();
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
}

}  // namespace oodt
