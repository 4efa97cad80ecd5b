// The action-result cache around executors: hits skip the call and are
// counted, only successes are stored, per-action TTLs, the webhook cache key,
// and the threaded (Redis-style) path through a blocking_runner.
#include "messages/attempt.hpp"
#include "runtime/core/dedup.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/core/redis_url.hpp"
#include "runtime/core/result_cache.hpp"
#include "runtime/exec/caching.hpp"
#include "runtime/exec/executor.hpp"
#include "runtime/ops/metrics.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <atomic>
#include <future>
#include <string>
#include <vector>

using namespace fraiseql;
using namespace std::chrono_literals;

namespace {

struct sim_clock {
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  steady_clock_fn fn() {
    return [this] { return now; };
  }
};

/// Counts calls; answers `next` (synchronously or through the callback).
struct fake_executor final : action_executor {
  std::atomic<int> calls{0};
  attempt_outcome next = attempt_outcome::success();
  bool async = false;
  std::chrono::milliseconds ttl{0};

  std::optional<action_cache_key> cache_key(const attempt_request& req) const override {
    if (req.idempotency_key == "uncacheable") return std::nullopt;
    return action_cache_key{"k:" + std::string(req.ev->entity_id), ttl};
  }
  std::optional<attempt_outcome> start(const attempt_request&, attempt_callback done) override {
    ++calls;
    if (!async) return next;
    done(next);
    return std::nullopt;
  }
};

std::shared_ptr<const observer_registry> empty_registry() {
  std::vector<std::string> errors;
  return observer_registry::build({}, errors);
}

double metric(const metrics& m, const std::string& name) {
  const std::string text = m.scrape();
  const auto at = text.find("\n" + name + " ");
  REQUIRE(at != std::string::npos);
  return std::stod(text.substr(at + name.size() + 2));
}

/// Runs one attempt and waits for its outcome, however it comes.
attempt_outcome attempt(action_executor& ex, const event& ev, const std::string& idem = "i") {
  attempt_request req;
  req.ev = &ev;
  req.idempotency_key = idem;
  auto p = std::make_shared<std::promise<attempt_outcome>>();
  auto f = p->get_future();
  auto sync = ex.start(req, [p](attempt_outcome o) { p->set_value(std::move(o)); });
  if (sync) return *sync;
  REQUIRE(f.wait_for(5s) == std::future_status::ready);
  return f.get();
}

}  // namespace

TEST_SUITE("action_cache") {
  TEST_CASE("a hit skips the call; only successes are stored; hits and misses are counted") {
    for (bool async : {false, true}) {
      CAPTURE(async);
      auto reg = empty_registry();
      auto stats = std::make_shared<metrics>(*reg, "test");
      sim_clock clk;
      auto cache = std::make_shared<lru_ttl_cache>(100, 60s, clk.fn());
      auto inner = std::make_shared<fake_executor>();
      inner->async = async;
      auto ex = make_caching_executor(inner, cache, nullptr, 60s, stats);
      event a;
      a.entity_id = "1";
      event b;
      b.entity_id = "2";

      inner->next = attempt_outcome::failure("HTTP 503", true);
      CHECK_FALSE(attempt(*ex, a).ok);
      CHECK(inner->calls == 1);
      inner->next = attempt_outcome::success();
      CHECK(attempt(*ex, a).ok);  // the failure was not cached: the call ran
      CHECK(inner->calls == 2);
      CHECK(attempt(*ex, a).ok);  // hit
      CHECK(attempt(*ex, a).ok);  // hit
      CHECK(inner->calls == 2);
      CHECK(attempt(*ex, b).ok);  // another request: miss
      CHECK(inner->calls == 3);
      CHECK(attempt(*ex, a, "uncacheable").ok);  // not cacheable: neither hit nor miss
      CHECK(inner->calls == 4);
      CHECK(metric(*stats, "observer_cache_hits_total") == 2);
      CHECK(metric(*stats, "observer_cache_misses_total") == 3);
      CHECK(metric(*stats, "observer_cache_hit_rate") == doctest::Approx(0.4));

      clk.now += 61s;  // the entry expired
      CHECK(attempt(*ex, a).ok);
      CHECK(inner->calls == 5);
    }
  }

  TEST_CASE("the in-memory cache reports entries, capacity, evictions and expirations") {
    sim_clock clk;
    lru_ttl_cache cache(2, 60s, clk.fn());
    cache.put("a", "ok");
    cache.put("b", "ok");
    auto u = cache.usage();
    CHECK(u.entries == 2u);
    CHECK(u.capacity == 2u);
    CHECK(u.evictions == 0u);
    cache.put("c", "ok");  // a is the least recently used: evicted
    u = cache.usage();
    CHECK(u.entries == 2u);
    CHECK(u.evictions == 1u);
    CHECK_FALSE(cache.get("a"));
    clk.now += 61s;
    CHECK_FALSE(cache.get("b"));  // expired, dropped on lookup
    u = cache.usage();
    CHECK(u.entries == 1u);
    CHECK(u.expired == 1u);
  }

  TEST_CASE("lookups are counted per observer for cache-stats") {
    std::vector<observer_config> obs(2);
    for (size_t i = 0; i < obs.size(); ++i) {
      obs[i].name = "o" + std::to_string(i);
      obs[i].event_type = "INSERT";
      obs[i].entity = "Order";
      action_config a;
      a.type = "log";
      a.log = log_action_config{};
      obs[i].actions.push_back(a);
    }
    std::vector<std::string> errors;
    auto reg = observer_registry::build(obs, errors);
    REQUIRE(errors.empty());
    metrics stats(*reg, "test");
    stats.cache_hit(1);
    stats.cache_hit(1);
    stats.cache_miss(1);
    stats.cache_miss(0);
    stats.cache_hit(7);  // no such observer: counted in the totals only
    CHECK(stats.cache_lookups(0) == std::make_pair(uint64_t{0}, uint64_t{1}));
    CHECK(stats.cache_lookups(1) == std::make_pair(uint64_t{2}, uint64_t{1}));
    CHECK(stats.cache_lookups(7) == std::make_pair(uint64_t{0}, uint64_t{0}));
    CHECK(metric(stats, "observer_cache_hits_total") == 3);
    CHECK(metric(stats, "observer_cache_hit_rate") == doctest::Approx(0.6));
  }

  TEST_CASE("a per-action TTL overrides the cache's default") {
    sim_clock clk;
    auto cache = std::make_shared<lru_ttl_cache>(100, 60s, clk.fn());
    auto inner = std::make_shared<fake_executor>();
    inner->ttl = 5s;
    auto ex = make_caching_executor(inner, cache, nullptr, 60s, nullptr);
    event a;
    a.entity_id = "1";
    CHECK(attempt(*ex, a).ok);
    clk.now += 4s;
    CHECK(attempt(*ex, a).ok);
    CHECK(inner->calls == 1);
    clk.now += 2s;
    CHECK(attempt(*ex, a).ok);
    CHECK(inner->calls == 2);
  }

  TEST_CASE("with a runner (the Redis path) lookups and stores leave the caller's thread") {
    auto cache = std::make_shared<lru_ttl_cache>(100, 60s);
    auto runner = std::make_shared<blocking_runner>(2, "test");
    for (bool async : {false, true}) {
      CAPTURE(async);
      auto inner = std::make_shared<fake_executor>();
      inner->async = async;
      auto ex = make_caching_executor(inner, cache, runner, 60s, nullptr);
      event a;
      a.entity_id = async ? "async" : "sync";
      CHECK(attempt(*ex, a).ok);
      // The store is posted behind the outcome: wait until it landed.
      for (int i = 0; i < 500 && !cache->get("k:" + a.entity_id); ++i)
        std::this_thread::sleep_for(2ms);
      CHECK(attempt(*ex, a).ok);
      CHECK(inner->calls == 1);
    }
    runner->shutdown();
  }

  TEST_CASE("a cache that throws counts as a miss: the call runs") {
    struct broken_cache final : result_cache {
      broken_cache() : result_cache(60s) {}
      std::optional<std::string> do_get(const std::string&) override {
        throw redis_unavailable("redis at 127.0.0.1:1: Connection refused");
      }
      std::vector<std::optional<std::string>> do_get_many(
          const std::vector<std::string>&) override {
        throw redis_unavailable("down");
      }
      void do_put(const std::string&, const std::string&, std::chrono::milliseconds) override {
        throw redis_unavailable("down");
      }
    };
    auto inner = std::make_shared<fake_executor>();
    auto ex = make_caching_executor(inner, std::make_shared<broken_cache>(), nullptr, 60s, nullptr);
    event a;
    a.entity_id = "1";
    CHECK(attempt(*ex, a).ok);
    CHECK(attempt(*ex, a).ok);
    CHECK(inner->calls == 2);
  }

  TEST_CASE("webhook cache key: the rendered request, without per-event headers") {
    auto make_obs = [](bool cache, const std::string& body) {
      observer_config o;
      o.name = "o";
      o.event_type = "*";
      o.entity = "*";
      action_config a;
      a.type = "webhook";
      a.where = "observers[0].actions[0]";
      webhook_action_config w;
      w.url = "http://127.0.0.1:1/hook";
      w.body_template = body;
      w.cache = cache;
      a.webhook = w;
      o.actions.push_back(a);
      return o;
    };
    std::vector<std::string> errors;
    auto reg = observer_registry::build({make_obs(true, "{\"fixed\": 1}"), make_obs(false, "{}"),
                                         make_obs(true, "{{ event.entity_id }}")},
                                        errors);
    REQUIRE(errors.empty());
    auto ex = make_webhook_executor(reg, nullptr);
    auto key = [&](uint32_t observer, const std::string& entity_id, const std::string& id) {
      event ev;
      ev.id = id;
      ev.entity_id = entity_id;
      ev.event_type = "INSERT";
      ev.entity_type = "Order";
      ev.envelope = boost::json::object{{"id", id}, {"entity_id", entity_id}};
      ev.envelope_json = boost::json::serialize(ev.envelope);
      attempt_request req;
      req.ev = &ev;
      req.observer = observer;
      req.observer_cfg = &reg->config(observer);
      req.action_cfg = &reg->config(observer).actions[0];
      req.idempotency_key = id + ":o:0";
      return ex->cache_key(req);
    };
    auto k1 = key(0, "1", "e1");
    REQUIRE(k1);
    CHECK(k1->key.rfind("webhook:", 0) == 0);
    CHECK(k1->key.size() == 8 + 64);
    CHECK(key(0, "2", "e2")->key == k1->key);                 // same rendered request, other event
    CHECK_FALSE(key(1, "1", "e1").has_value());               // cache = false
    CHECK(key(2, "1", "e1")->key != key(2, "2", "e1")->key);  // the body differs
  }

  TEST_CASE("sha256_hex") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  }
}
