//===- ThreadPool.cpp -----------------------------------------------------===//
#include "runtime/src/backends/cpu/ThreadPool.h"

#include <algorithm>
#include <chrono>

namespace kvrt::cpu {
namespace {

/// Yields while `waiting()` holds, for at most 200 microseconds.
template <typename Waiting> void spinWhile(const Waiting &waiting) {
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::microseconds(200);
  while (waiting() && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
}

} // namespace

ThreadPool::ThreadPool(unsigned threads) {
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned t = 1; t < threads; ++t)
    workers_.emplace_back([this, t] { workerLoop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread &w : workers_)
    w.join();
}

void ThreadPool::run(size_t tasks, const Task &task) {
  if (workers_.empty() || tasks <= 1) {
    for (size_t i = 0; i < tasks; ++i)
      task(i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    tasks_ = tasks;
    next_.store(0);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  drain(task, tasks, 0);
  // The workers' last tasks end within microseconds of the caller's:
  // spinning for them spares the caller a sleep and a wake-up per job
  // (two cores, 2026-12-05, `kvopt bench` of the default model at 512
  // tokens: a decode step 6.60-6.65 ms against 7.92-8.29 sleeping).
  spinWhile([&] { return active_.load(std::memory_order_acquire) != 0; });
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return active_ == 0; });
  task_ = nullptr;
}

void ThreadPool::parallelFor(
    int64_t n, int64_t grain,
    const std::function<void(int64_t, int64_t, unsigned)> &fn) {
  if (n <= 0)
    return;
  // A few chunks per thread even out uneven tasks.
  int64_t chunks =
      std::min<int64_t>(std::max<int64_t>(1, n / std::max<int64_t>(1, grain)),
                        int64_t(size()) * 4);
  int64_t per = (n + chunks - 1) / chunks;
  chunks = (n + per - 1) / per;
  run(size_t(chunks), [&](size_t c, unsigned thread) {
    int64_t begin = int64_t(c) * per;
    fn(begin, std::min(n, begin + per), thread);
  });
}

void ThreadPool::drain(const Task &task, size_t tasks, unsigned thread) {
  for (size_t i; (i = next_.fetch_add(1)) < tasks;)
    task(i, thread);
}

void ThreadPool::workerLoop(unsigned thread) {
  uint64_t seen = 0;
  while (true) {
    // Decode runs a kernel every few microseconds: spin briefly before
    // sleeping so that the next job does not pay for a wake-up.
    spinWhile(
        [&] { return generation_.load(std::memory_order_acquire) == seen; });
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [&] { return stopping_ || generation_.load() != seen; });
    if (stopping_)
      return;
    seen = generation_.load();
    if (!task_)
      continue;
    const Task *task = task_;
    size_t tasks = tasks_;
    ++active_;
    lock.unlock();
    drain(*task, tasks, thread);
    lock.lock();
    if (--active_ == 0)
      done_.notify_one();
  }
}

} // namespace kvrt::cpu
