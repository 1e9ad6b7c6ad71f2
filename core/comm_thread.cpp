#include "core/comm_thread.h"

#include <chrono>

namespace oodt {

CommThread::CommThread() : thread_([this] { loop(); }) {}

CommThread::~CommThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CommThread::submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void CommThread::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return jobs_.empty() && !running_job_; });
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

double CommThread::take_busy_seconds() {
  std::lock_guard<std::mutex> lock(mu_);
  const double b = busy_;
  busy_ = 0;
  return b;
}

void CommThread::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, nothing left
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    running_job_ = true;
    lock.unlock();
    const auto t0 = std::chrono::steady_clock::now();
    std::exception_ptr err;
    // After a failure the remaining jobs still run (they are collectives the other ranks
    // expect); only the first error is kept.
    try {
      job();
    } catch (...) {
      err = std::current_exception();
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    lock.lock();
    busy_ += dt;
    if (err && !error_) error_ = err;
    running_job_ = false;
    if (jobs_.empty()) idle_.notify_all();
  }
}

}  // namespace oodt
