#include "runtime/exec/caching.hpp"

#include "messages/attempt.hpp"
#include "runtime/core/result_cache.hpp"
#include "runtime/exec/executor.hpp"
#include "runtime/ops/metrics.hpp"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

namespace fraiseql {

blocking_runner::blocking_runner(size_t threads, std::string name) : name_(std::move(name)) {
  if (threads == 0) threads = 1;
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

blocking_runner::~blocking_runner() {
  shutdown();
}

void blocking_runner::shutdown() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard<std::mutex> lk(mtx_);
    stop_ = true;
    dropped.swap(tasks_);
  }
  cv_.notify_all();
  dropped.clear();  // outside the lock: captured state may be released here
  for (auto& t : threads_) {
    if (!t.joinable()) continue;
    if (t.get_id() == std::this_thread::get_id())
      t.detach();  // released by its own task
    else
      t.join();
  }
}

void blocking_runner::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lk(mtx_);
    if (stop_) return;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void blocking_runner::loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lk(mtx_);
      cv_.wait(lk, [this] { return stop_ || !tasks_.empty(); });
      if (stop_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      spdlog::error("{}: task failed: {}", name_, e.what());
    }
  }
}

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed (OpenSSL EVP_Digest)");
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

namespace {

/// The value stored for a successful call: what a hit replays is "it succeeded".
const char* const cached_success = "ok";

class caching_executor final : public action_executor,
                               public std::enable_shared_from_this<caching_executor> {
 public:
  caching_executor(std::shared_ptr<action_executor> inner, std::shared_ptr<result_cache> cache,
                   std::shared_ptr<blocking_runner> runner, std::chrono::milliseconds ttl,
                   std::shared_ptr<metrics> stats)
      : inner_(std::move(inner)),
        cache_(std::move(cache)),
        runner_(std::move(runner)),
        ttl_(ttl),
        stats_(std::move(stats)) {}

  std::optional<action_cache_key> cache_key(const attempt_request& req) const override {
    return inner_->cache_key(req);
  }
  std::string endpoint(const attempt_request& req) const override { return inner_->endpoint(req); }
  bool adaptive() const override { return inner_->adaptive(); }
  /// Batches are never cached (batch_size > 1 excludes cache = true).
  std::optional<attempt_outcome> start_batch(const batch_request& req,
                                             std::vector<std::pair<size_t, std::string>>& rejected,
                                             attempt_callback done) override {
    return inner_->start_batch(req, rejected, std::move(done));
  }

  std::optional<attempt_outcome> start(const attempt_request& req, attempt_callback done) override {
    auto key = inner_->cache_key(req);
    if (!key) return inner_->start(req, std::move(done));
    const auto ttl = key->ttl.count() > 0 ? key->ttl : ttl_;
    if (!runner_) {
      // In memory: a lookup costs well under a microsecond, do it inline.
      if (lookup(key->key, req.observer)) return attempt_outcome::success();
      auto sync = inner_->start(req, [self = shared_from_this(), k = key->key, ttl,
                                      done = std::move(done)](attempt_outcome o) {
        if (o.ok) self->store(k, ttl);
        done(std::move(o));
      });
      if (sync && sync->ok) store(key->key, ttl);
      return sync;
    }
    // Redis: the lookup blocks, so it runs on the runner; on a miss the call
    // starts from there too (executors' start() is thread-safe and never
    // blocks). The request's pointers stay valid until `done` is called: the
    // pool keeps the event and the configs until the attempt's outcome.
    runner_->post([self = shared_from_this(), req, k = std::move(key->key), ttl,
                   done = std::move(done)]() mutable {
      if (self->lookup(k, req.observer)) return done(attempt_outcome::success());
      // A success is stored before it is reported: the attempt that follows
      // (an identical request, say) then finds it. Costs one round trip, on
      // the runner, not on the executor's thread.
      auto wrapped = [self, k, ttl, done](attempt_outcome o) {
        if (!o.ok) return done(std::move(o));
        self->runner_->post([self, k, ttl, done, o = std::move(o)]() mutable {
          self->store(k, ttl);
          done(std::move(o));
        });
      };
      auto sync = self->inner_->start(req, wrapped);
      if (sync) wrapped(std::move(*sync));
    });
    return std::nullopt;
  }

 private:
  bool lookup(const std::string& key, uint32_t observer) {
    bool hit = false;
    try {
      hit = cache_->get(key).has_value();
    } catch (const std::exception& e) {
      // Redis down or confused: the call runs (a miss); the dedup actor
      // applies the failure policy, the cache never holds events back.
      log_error("lookup", e);
    }
    if (stats_) {
      if (hit)
        stats_->cache_hit(observer);
      else
        stats_->cache_miss(observer);
    }
    return hit;
  }

  void store(const std::string& key, std::chrono::milliseconds ttl) {
    try {
      cache_->put(key, cached_success, ttl);
    } catch (const std::exception& e) {
      log_error("store", e);
    }
  }

  void log_error(const char* what, const std::exception& e) {
    // At most one line per 10 s: an outage would otherwise log every attempt.
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lk(log_mtx_);
    ++errors_;
    if (now - last_log_ < std::chrono::seconds(10)) return;
    last_log_ = now;
    spdlog::warn("action cache: {} failed, the call runs uncached ({} errors so far): {}", what,
                 errors_, e.what());
  }

  std::shared_ptr<action_executor> inner_;
  std::shared_ptr<result_cache> cache_;
  std::shared_ptr<blocking_runner> runner_;
  std::chrono::milliseconds ttl_;
  std::shared_ptr<metrics> stats_;
  std::mutex log_mtx_;
  std::chrono::steady_clock::time_point last_log_{};
  uint64_t errors_ = 0;
};

}  // namespace

std::shared_ptr<action_executor> make_caching_executor(std::shared_ptr<action_executor> inner,
                                                       std::shared_ptr<result_cache> cache,
                                                       std::shared_ptr<blocking_runner> runner,
                                                       std::chrono::milliseconds default_ttl,
                                                       std::shared_ptr<metrics> stats) {
  return std::make_shared<caching_executor>(std::move(inner), std::move(cache), std::move(runner),
                                            default_ttl, std::move(stats));
}

}  // namespace fraiseql
