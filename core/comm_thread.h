#pragma once
// One background thread that runs communication jobs in submission order: gradient buckets
// are all-reduced here while backward goes on computing the rest. An exception thrown by a
// job is kept and rethrown by wait(), on the thread that waits.
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace oodt {

class CommThread {
 public:
  CommThread();
  ~CommThread();
  CommThread(const CommThread&) = delete;
  CommThread& operator=(const CommThread&) = delete;

  void submit(std::function<void()> job);
  // Blocks until every submitted job has finished; rethrows the first job's exception.
  void wait();
  // Seconds the thread spent inside jobs since the last call (what the benchmark reports as
  // communication time, to compare with the time the main thread waited).
  double take_busy_seconds();

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_, idle_;
  std::deque<std::function<void()>> jobs_;
  bool running_job_ = false, stop_ = false;
  std::exception_ptr error_;
  double busy_ = 0;
  std::thread thread_;
};

}  // namespace oodt
