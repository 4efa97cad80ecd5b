// dedup_bench: dedup checks per second on Redis with pipelining, and the
// latency of the action-result cache's hit path.
//
// Method. A private redis-server (scripts/redis.sh, loopback, no persistence)
// unless FRAISEQL_REDIS_URL names one. Event ids look like change-log uuids.
//   - claim, new ids: redis_dedup::claim over batches of B fresh ids (one
//     pipeline of SET NX PX per batch): the common case, every event new.
//   - claim, already done: the same ids again after confirm (SET NX fails,
//     then a pipelined GET: two round trips per batch): the duplicate case.
//   - claim + confirm: the full protocol per batch (SET NX pipeline + EVALSHA
//     confirm pipeline).
//   - 2 threads: two threads claiming disjoint fresh ids concurrently.
//   - unpipelined: one claim call per id (one round trip each), for contrast.
//   - cache hit: redis_result_cache::get of a present 200-byte value, one
//     call (lease + one round trip) at a time; per-call latency percentiles.
//     The same for the in-memory lru_ttl_cache.
//   - engine hit path: caching_executor::start of a cacheable webhook action
//     whose result is cached, until its outcome is delivered: render the
//     request, SHA-256 it, look it up (inline in memory; on Redis through the
//     blocking_runner thread and back), no HTTP. What a hit costs the pool.
// Client and server share the machine's cores (2 on the reference machine).
// Prints figures; asserts nothing (benchmarks are never timed tests).
//
// Usage: dedup_bench [events=200000] [batch=1000] [runs=3]

#include "messages/attempt.hpp"
#include "runtime/core/dedup.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/core/redis_url.hpp"
#include "runtime/core/result_cache.hpp"
#include "runtime/exec/caching.hpp"
#include "runtime/exec/executor.hpp"
#include "runtime/io/redis/cache.hpp"
#include "runtime/io/redis/connection.hpp"
#include "runtime/io/redis/dedup.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace fraiseql;
using clock_type = std::chrono::steady_clock;

namespace {

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::vector<std::string> uuids(size_t n, std::mt19937_64& rng) {
  std::vector<std::string> out;
  out.reserve(n);
  char buf[40];
  for (size_t i = 0; i < n; ++i) {
    const uint64_t a = rng(), b = rng();
    std::snprintf(buf, sizeof buf, "%08llx-%04llx-4%03llx-%04llx-%012llx",
                  static_cast<unsigned long long>(a >> 32),
                  static_cast<unsigned long long>((a >> 16) & 0xffff),
                  static_cast<unsigned long long>(a & 0xfff),
                  static_cast<unsigned long long>((b >> 48) | 0x8000),
                  static_cast<unsigned long long>(b & 0xffffffffffffULL));
    out.emplace_back(buf);
  }
  return out;
}

/// Claims `ids` in batches; returns claims per second.
double claim_rate(redis_dedup& d, const std::vector<std::string>& ids, size_t batch,
                  const std::string& owner, bool confirm, claim_status expect) {
  size_t unexpected = 0;
  const auto t0 = clock_type::now();
  for (size_t off = 0; off < ids.size(); off += batch) {
    std::vector<std::string> b(ids.begin() + off, ids.begin() + std::min(ids.size(), off + batch));
    const auto s = d.claim(b, owner, std::chrono::seconds(30));
    for (auto x : s) unexpected += x != expect;
    if (confirm) d.confirm_all(b, owner);
  }
  const double rate = ids.size() / seconds_since(t0);
  if (unexpected) std::printf("  (!) %zu unexpected claim results\n", unexpected);
  return rate;
}

struct percentiles {
  double p50, p99, p999, max;
};

percentiles summarize(std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))];
  };
  return {at(0.50), at(0.99), at(0.999), us.back()};
}

template <class F>
percentiles latency(size_t n, F&& f) {
  std::vector<double> us;
  us.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto t0 = clock_type::now();
    f(i);
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }
  return summarize(us);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t events = argc > 1 ? std::stoul(argv[1]) : 200000;
  const size_t batch = argc > 2 ? std::stoul(argv[2]) : 1000;
  const int reps = argc > 3 ? std::stoi(argv[3]) : 3;

  std::string url;
  std::string own_dir;
  if (const char* u = std::getenv("FRAISEQL_REDIS_URL")) url = u;
  if (url.empty()) {
    own_dir = "/tmp/dedup-bench-redis-" + std::to_string(getpid());
    if (std::system(
            (std::string(REDIS_SH) + " start " + own_dir + " </dev/null >/dev/null").c_str()) !=
        0) {
      std::fprintf(stderr, "cannot start redis-server via %s\n", REDIS_SH);
      return 1;
    }
    std::ifstream env(own_dir + "/env");
    for (std::string line; std::getline(env, line);)
      if (line.rfind("FRAISEQL_REDIS_URL=", 0) == 0) url = line.substr(19);
  }

  int rc = 0;
  try {
    redis_connection_options o;
    o.url = redis_url::parse(url);
    redis_pool pool{o, 4};
    pool.check();
    redis_dedup dedup{pool, std::chrono::seconds(300)};
    std::mt19937_64 rng{42};
    const std::string owner = make_owner_token("bench");

    std::printf("redis %s, %zu events, batches of %zu, %u hardware threads\n",
                o.url.to_string().c_str(), events, batch, std::thread::hardware_concurrency());
    // Warm up (connections, script cache, allocator).
    claim_rate(dedup, uuids(20000, rng), batch, owner, true, claim_status::claimed);

    // Each row runs `reps` times on fresh ids (the machine may be shared):
    // median and best are printed.
    struct row {
      const char* name;
      std::vector<double> rates;
    };
    std::vector<row> rows = {{"claim, new ids (pipelined)", {}},
                             {"claim, already done (pipelined, 2 round trips)", {}},
                             {"claim + confirm (pipelined)", {}},
                             {"claim, new ids, 2 threads (pipelined)", {}},
                             {"claim, new ids, one round trip per id", {}}};
    for (int rep = 0; rep < reps; ++rep) {
      const auto fresh = uuids(events, rng);
      rows[0].rates.push_back(claim_rate(dedup, fresh, batch, owner, false, claim_status::claimed));
      dedup.confirm_all(fresh, owner);
      rows[1].rates.push_back(claim_rate(dedup, fresh, batch, owner, false, claim_status::done));
      rows[2].rates.push_back(
          claim_rate(dedup, uuids(events, rng), batch, owner, true, claim_status::claimed));
      const auto a = uuids(events / 2, rng), b = uuids(events / 2, rng);
      const auto t0 = clock_type::now();
      std::thread t1([&] { claim_rate(dedup, a, batch, owner, false, claim_status::claimed); });
      std::thread t2([&] { claim_rate(dedup, b, batch, owner, false, claim_status::claimed); });
      t1.join();
      t2.join();
      rows[3].rates.push_back((a.size() + b.size()) / seconds_since(t0));
      rows[4].rates.push_back(claim_rate(dedup, uuids(std::min<size_t>(events, 20000), rng), 1,
                                         owner, false, claim_status::claimed));
    }
    std::printf("\n%-48s %12s %12s   (%d runs)\n", "dedup (redis_dedup, pool of 4), events/s",
                "median", "best", reps);
    std::vector<double> medians;
    for (auto& r : rows) {
      std::sort(r.rates.begin(), r.rates.end());
      medians.push_back(r.rates[r.rates.size() / 2]);
      std::printf("%-48s %12.0f %12.0f\n", r.name, medians.back(), r.rates.back());
    }
    const double new_rate = medians[0], done_rate = medians[1], cycle_rate = medians[2],
                 two_rate = medians[3], single_rate = medians[4];

    // Cache hit path.
    redis_result_cache cache{pool, std::chrono::seconds(60)};
    const std::string value(200, 'v');
    const size_t keys = 1000, gets = 50000;
    for (size_t i = 0; i < keys; ++i) cache.put("bench-" + std::to_string(i), value);
    size_t misses = 0;
    const auto rp = latency(gets, [&](size_t i) {
      misses += !cache.get("bench-" + std::to_string(i % keys)).has_value();
    });
    lru_ttl_cache mem{10000, std::chrono::seconds(60)};
    for (size_t i = 0; i < keys; ++i) mem.put("bench-" + std::to_string(i), value);
    const auto mp = latency(gets * 4, [&](size_t i) {
      misses += !mem.get("bench-" + std::to_string(i % keys)).has_value();
    });
    std::printf("\n%-34s %9s %9s %9s %9s   (%zu gets, %zu misses)\n", "cache hit latency (us)",
                "p50", "p99", "p99.9", "max", gets, misses);
    std::printf("%-34s %9.1f %9.1f %9.1f %9.1f\n", "redis_result_cache::get", rp.p50, rp.p99,
                rp.p999, rp.max);
    std::printf("%-34s %9.2f %9.2f %9.2f %9.1f\n", "lru_ttl_cache::get (in memory)", mp.p50, mp.p99,
                mp.p999, mp.max);
    // Engine hit path: a webhook action with cache = true, its result cached.
    observer_config oc;
    oc.name = "bench";
    oc.event_type = "*";
    oc.entity = "*";
    action_config ac;
    ac.type = "webhook";
    ac.where = "observers[0].actions[0]";
    webhook_action_config w;
    w.url = "http://127.0.0.1:9/hooks/{{ event.entity_type }}";
    w.body_template = "{\"refresh\": \"{{ event.entity_type }}\", \"source\": \"bench\"}";
    w.cache = true;
    ac.webhook = w;
    oc.actions.push_back(ac);
    std::vector<std::string> errors;
    auto reg = observer_registry::build({oc}, errors);
    if (!errors.empty()) throw std::runtime_error(errors.front());
    event ev;
    ev.id = "00000000-0000-0000-0000-000000000001";
    ev.event_type = "INSERT";
    ev.entity_type = "Order";
    ev.entity_id = "1";
    ev.envelope = boost::json::object{{"id", ev.id}, {"entity_type", "Order"}, {"entity_id", "1"}};
    ev.envelope_json = boost::json::serialize(ev.envelope);
    attempt_request req;
    req.ev = &ev;
    req.observer_cfg = &reg->config(0);
    req.action_cfg = &reg->config(0).actions[0];
    req.idempotency_key = ev.id + ":bench:0";
    auto inner = make_webhook_executor(reg, nullptr);  // never called on a hit
    const auto key = inner->cache_key(req)->key;
    auto hit_path = [&](std::shared_ptr<result_cache> c, std::shared_ptr<blocking_runner> runner) {
      c->put(key, "ok");
      auto ex = make_caching_executor(inner, c, runner, std::chrono::seconds(60), nullptr);
      size_t not_ok = 0;
      auto p = latency(gets, [&](size_t) {
        std::promise<bool> done;
        auto f = done.get_future();
        auto sync = ex->start(req, [&done](attempt_outcome o) { done.set_value(o.ok); });
        not_ok += !(sync ? sync->ok : f.get());
      });
      if (not_ok)
        throw std::runtime_error("engine hit path: " + std::to_string(not_ok) + " misses");
      return p;
    };
    auto runner = std::make_shared<blocking_runner>(1, "bench");
    const auto ep_redis =
        hit_path(std::make_shared<redis_result_cache>(pool, std::chrono::seconds(60)), runner);
    runner->shutdown();
    const auto ep_mem =
        hit_path(std::make_shared<lru_ttl_cache>(10000, std::chrono::seconds(60)), nullptr);
    std::printf("%-34s %9.1f %9.1f %9.1f %9.1f\n", "engine hit path, Redis", ep_redis.p50,
                ep_redis.p99, ep_redis.p999, ep_redis.max);
    std::printf("%-34s %9.2f %9.2f %9.2f %9.1f\n", "engine hit path, in memory", ep_mem.p50,
                ep_mem.p99, ep_mem.p999, ep_mem.max);
    std::printf(
        "\n{\"bench\":\"redis_dedup\",\"events\":%zu,\"batch\":%zu,\"claim_new_per_s\":%.0f,"
        "\"claim_done_per_s\":%.0f,\"claim_confirm_per_s\":%.0f,\"claim_new_2threads_per_s\":%.0f,"
        "\"claim_unpipelined_per_s\":%.0f,\"cache_hit_p50_us\":%.1f,\"cache_hit_p99_us\":%.1f,"
        "\"memory_cache_hit_p99_us\":%.2f,\"engine_hit_redis_p99_us\":%.1f,"
        "\"engine_hit_memory_p99_us\":%.2f}\n",
        events, batch, new_rate, done_rate, cycle_rate, two_rate, single_rate, rp.p50, rp.p99,
        mp.p99, ep_redis.p99, ep_mem.p99);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dedup_bench: %s\n", e.what());
    rc = 1;
  }
  if (!own_dir.empty())
    (void)std::system(
        (std::string(REDIS_SH) + " stop " + own_dir + " </dev/null >/dev/null").c_str());
  return rc;
}
