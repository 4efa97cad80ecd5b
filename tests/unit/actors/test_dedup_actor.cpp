// The dedup actor on CAF's test coordinator with an in-memory claim store:
// claimed events reach the pool in order, done ones are finished at once, a
// busy event holds back the ones behind it, confirms precede the finish sent
// to the checkpointer, and the failure policies when the store is down.

#include "actors/pipeline/dedup.hpp"
#include "runtime/core/dedup.hpp"
#include "runtime/core/outage.hpp"
#include "runtime/core/redis_url.hpp"

#include <doctest/doctest.h>
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <memory>
#include <vector>

using namespace fraiseql;
using namespace std::chrono_literals;

namespace {

/// memory_dedup that can be told to fail as an unreachable Redis.
struct flaky_store final : dedup_store {
  memory_dedup inner{std::chrono::minutes(5)};
  bool down = false;
  flaky_store() : dedup_store(std::chrono::minutes(5)) {}
  void check() {
    if (down) throw redis_unavailable("redis at 127.0.0.1:1: Connection refused (fake)");
  }
  std::vector<claim_status> claim(const std::vector<std::string>& ids, const std::string& owner,
                                  std::chrono::milliseconds ttl) override {
    check();
    return inner.claim(ids, owner, ttl);
  }
  std::vector<bool> extend(const std::vector<std::string>& ids, const std::string& owner,
                           std::chrono::milliseconds ttl) override {
    check();
    return inner.extend(ids, owner, ttl);
  }
  std::vector<confirm_status> confirm_all(const std::vector<std::string>& ids,
                                          const std::string& owner) override {
    check();
    return inner.confirm_all(ids, owner);
  }
  std::vector<bool> release_all(const std::vector<std::string>& ids,
                                const std::string& owner) override {
    check();
    return inner.release_all(ids, owner);
  }
};

struct recorded {
  std::vector<uint64_t> ran;       // seqs handed to the pool, in order
  std::vector<uint64_t> finished;  // seqs the checkpointer got
};

struct fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<flaky_store> store = std::make_shared<flaky_store>();
  std::shared_ptr<recorded> rec = std::make_shared<recorded>();
  dedup_actor dd;
  run_sink pool;

  /// `wired`: the dedup actor learns the pool at once (as in the node).
  explicit fixture(redis_failure_policy policy = redis_failure_policy::fail_open,
                   bool wired = true) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.verbosity", caf::atom("quiet"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    auto r = rec;
    // The dedup actor sees the pool only as a run_sink and the checkpointer
    // only as a finish_sink: the fakes implement just that.
    pool = sys->spawn([r]() -> run_sink::behavior_type {
      return {
          [r](run_atom, const event_ptr& ev, const std::vector<uint32_t>&) {
            r->ran.push_back(ev->seq);
          },
      };
    });
    auto cp = sys->spawn([r]() -> finish_sink::behavior_type {
      return {
          [r](finish_atom, const std::vector<uint64_t>& seqs) {
            r->finished.insert(r->finished.end(), seqs.begin(), seqs.end());
          },
      };
    });
    dedup_options o;
    o.store = store;
    o.owner = "me:1:0000000000000001";
    o.claim_ttl = 30s;
    o.retry_interval = 250ms;
    o.policy = policy;
    o.detached = false;
    dd = spawn_dedup(*sys, o, cp);
    if (wired) caf::anon_send(dd, pool);
    sched->run();
  }

  ~fixture() {
    caf::anon_send_exit(dd, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
    sched->run();
  }

  void send(uint64_t seq) {
    auto ev = std::make_shared<event>();
    ev->seq = seq;
    ev->id = "ev-" + std::to_string(seq);
    caf::anon_send(dd, run_atom::value, event_ptr(ev), std::vector<uint32_t>{0});
  }
  /// A replayed copy of event `of` (replay `replay`): the same event id.
  void send_copy(uint64_t seq, uint64_t of, uint64_t replay) {
    auto ev = std::make_shared<event>();
    ev->seq = seq;
    ev->id = "ev-" + std::to_string(of);
    ev->replay_id = replay;
    caf::anon_send(dd, run_atom::value, event_ptr(ev), std::vector<uint32_t>{0});
  }
  void finish(std::vector<uint64_t> seqs) {
    caf::anon_send(dd, finish_atom::value, std::move(seqs));
    sched->run();
  }
  void tick() {
    sched->advance_time(250ms);
    sched->run();
  }
  std::string value(uint64_t seq) {
    // Claim as a third party: "done" answers done, a live claim answers busy.
    auto r = store->inner.claim({"ev-" + std::to_string(seq)}, "probe:0:0", 1ms);
    if (r[0] == claim_status::claimed)
      store->inner.release("ev-" + std::to_string(seq), "probe:0:0");
    return to_string(r[0]);
  }
};

}  // namespace

TEST_SUITE("dedup_actor") {
  TEST_CASE("claims a burst, runs it in order, confirms before the checkpointer sees the finish") {
    fixture f;
    for (uint64_t s = 1; s <= 3; ++s) f.send(s);
    f.sched->run();
    CHECK(f.rec->ran == std::vector<uint64_t>{1, 2, 3});
    CHECK(f.value(2) == std::string("busy"));  // claimed by us
    f.finish({2, 1});
    CHECK(f.rec->finished == std::vector<uint64_t>{2, 1});
    CHECK(f.value(1) == std::string("done"));
    CHECK(f.value(2) == std::string("done"));
    CHECK(f.value(3) == std::string("busy"));
  }

  TEST_CASE("events that come before the pool is known wait for it, in order") {
    fixture f{redis_failure_policy::fail_open, false};
    f.store->inner.claim({"ev-2"}, "other:1:1", 30s);
    f.store->inner.confirm("ev-2", "other:1:1");
    for (uint64_t s = 1; s <= 3; ++s) f.send(s);
    f.sched->run();
    CHECK(f.rec->ran.empty());
    CHECK(f.rec->finished.empty());
    caf::anon_send(f.dd, f.pool);
    f.sched->run();
    CHECK(f.rec->ran == std::vector<uint64_t>{1, 3});
    CHECK(f.rec->finished == std::vector<uint64_t>{2});
  }

  TEST_CASE("a done event is finished at once without running") {
    fixture f;
    f.store->inner.claim({"ev-1"}, "other:1:1", 30s);
    f.store->inner.confirm("ev-1", "other:1:1");
    f.send(1);
    f.send(2);
    f.sched->run();
    CHECK(f.rec->ran == std::vector<uint64_t>{2});
    CHECK(f.rec->finished == std::vector<uint64_t>{1});
  }

  TEST_CASE("a replay passes the original's claim; the same replay twice runs once") {
    fixture f;
    f.send(1);
    f.sched->run();
    f.finish({1});
    CHECK(f.value(1) == std::string("done"));
    // Replay 7 of event 1: its own identity, so it runs although event 1 is done.
    f.send_copy(2, 1, 7);
    f.sched->run();
    CHECK(f.rec->ran == std::vector<uint64_t>{1, 2});
    f.finish({2});
    // The same copy again (redelivered after a crash): done, not run.
    f.send_copy(3, 1, 7);
    f.sched->run();
    CHECK(f.rec->ran == std::vector<uint64_t>{1, 2});
    CHECK(f.rec->finished == std::vector<uint64_t>{1, 2, 3});
    // Another replay of the same event runs again.
    f.send_copy(4, 1, 8);
    f.sched->run();
    CHECK(f.rec->ran == std::vector<uint64_t>{1, 2, 4});
  }

  TEST_CASE("a busy event holds back the events behind it until it resolves") {
    fixture f;
    f.store->inner.claim({"ev-1"}, "other:1:1", 30s);  // another worker runs event 1
    f.send(1);
    f.send(2);
    f.sched->run();
    CHECK(f.rec->ran.empty());
    CHECK(f.value(2) == std::string("busy"));  // claimed by us, waiting behind 1
    f.tick();
    CHECK(f.rec->ran.empty());
    f.store->inner.confirm("ev-1", "other:1:1");  // the other worker finished it
    f.tick();
    CHECK(f.rec->finished == std::vector<uint64_t>{1});
    CHECK(f.rec->ran == std::vector<uint64_t>{2});
  }

  TEST_CASE("the other worker released it: the retry claims and runs it") {
    fixture f;
    f.store->inner.claim({"ev-1"}, "other:1:1", 30s);
    f.send(1);
    f.sched->run();
    f.store->inner.release("ev-1", "other:1:1");
    f.tick();
    CHECK(f.rec->ran == std::vector<uint64_t>{1});
  }

  TEST_CASE("fail-open: Redis down, events run without claims and still finish") {
    fixture f(redis_failure_policy::fail_open);
    f.store->down = true;
    f.send(1);
    f.send(2);
    f.sched->run();
    CHECK(f.rec->ran == std::vector<uint64_t>{1, 2});
    f.finish({1, 2});
    CHECK(f.rec->finished == std::vector<uint64_t>{1, 2});
  }

  TEST_CASE("fail-closed: nothing runs and no finish passes until Redis answers") {
    fixture f(redis_failure_policy::fail_closed);
    f.send(1);
    f.sched->run();
    REQUIRE(f.rec->ran == std::vector<uint64_t>{1});
    f.store->down = true;
    f.send(2);
    f.sched->run();
    f.finish({1});
    for (int i = 0; i < 8; ++i) f.tick();
    CHECK(f.rec->ran == std::vector<uint64_t>{1});
    CHECK(f.rec->finished.empty());
    f.store->down = false;
    for (int i = 0; i < 30 && f.rec->ran.size() < 2; ++i) f.tick();
    CHECK(f.rec->ran == std::vector<uint64_t>{1, 2});
    CHECK(f.rec->finished == std::vector<uint64_t>{1});
    CHECK(f.value(1) == std::string("done"));
  }

  TEST_CASE("stop releases the claims of unfinished events") {
    fixture f;
    f.send(1);
    f.sched->run();
    CHECK(f.value(1) == std::string("busy"));
    caf::scoped_actor self{*f.sys};
    self->send(f.dd, stop_atom::value);
    f.sched->run();
    CHECK(f.value(1) == std::string("claimed"));
  }
}
