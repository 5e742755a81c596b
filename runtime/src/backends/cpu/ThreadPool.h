//===- ThreadPool.h - Fork-join parallelism for CPU kernels -----*- C++ -*-===//
#ifndef KVRT_BACKENDS_CPU_THREADPOOL_H
#define KVRT_BACKENDS_CPU_THREADPOOL_H

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kvrt::cpu {

/// A fixed set of threads that run the tasks of one call at a time. The
/// calling thread works too, so a pool of size 1 starts no thread.
class ThreadPool {
public:
  /// A task: its index and the index (below size()) of the thread running
  /// it, for per-thread scratch memory.
  using Task = std::function<void(size_t task, unsigned thread)>;

  /// `threads` counts the caller; 0 means every hardware thread.
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  unsigned size() const { return unsigned(workers_.size()) + 1; }

  /// Runs task(i) for every i < tasks and returns when all have finished.
  /// Tasks must not throw.
  void run(size_t tasks, const Task &task);

  /// Splits [0, n) into chunks of at least `grain` items (a few per thread)
  /// and runs fn(begin, end, thread) on them; inline for a single chunk.
  void parallelFor(int64_t n, int64_t grain,
                   const std::function<void(int64_t, int64_t, unsigned)> &fn);

private:
  void workerLoop(unsigned thread);
  /// Takes tasks of the current job until none is left.
  void drain(const Task &task, size_t tasks, unsigned thread);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  /// Bumped for each job; workers wait for it to change.
  std::atomic<uint64_t> generation_{0};
  bool stopping_ = false;
  /// The current job; null once it has finished.
  const Task *task_ = nullptr;
  size_t tasks_ = 0;
  std::atomic<size_t> next_{0};
  /// Workers inside drain(); a job ends when all tasks are taken and none
  /// is, so no worker can take a task of the next job for this one.
  /// Changed under the mutex; read without it while the caller spins.
  std::atomic<unsigned> active_{0};
};

} // namespace kvrt::cpu

#endif // KVRT_BACKENDS_CPU_THREADPOOL_H
