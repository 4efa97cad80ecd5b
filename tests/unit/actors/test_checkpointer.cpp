// Deterministic tests of the checkpointer protocol on CAF's test_coordinator:
// every message is delivered when the test says so and time only moves when
// the test advances it.

#include "actors/pipeline/checkpointer.hpp"
#include "messages/checkpoint.hpp"
#include "runtime/core/checkpoint_sink.hpp"
#include "runtime/io/pg/session.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <algorithm>
#include <set>

using namespace fraiseql;

namespace {

/// Records saves; can be told to fail (database down).
struct fake_sink : checkpoint_sink {
  std::vector<checkpoint_record> saves;
  bool failing = false;
  void save(const checkpoint_record& rec) override {
    if (failing) throw pg_unavailable("database down (fake)");
    saves.push_back(rec);
  }
};

struct fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<fake_sink> sink = std::make_shared<fake_sink>();
  std::shared_ptr<uint64_t> credited = std::make_shared<uint64_t>(0);
  credit_sink fake_listener;
  checkpointer_actor cp;

  /// `wired`: the checkpointer learns its credit sink at once (as in the node).
  explicit fixture(uint32_t batch_size, uint32_t max_in_flight = 8, bool wired = true) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.verbosity", caf::atom("quiet"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    auto credited_ptr = credited;
    // A listener that only counts credits (the checkpointer can send nothing else).
    fake_listener = sys->spawn([credited_ptr]() -> credit_sink::behavior_type {
      return {
          [credited_ptr](credit_atom, uint64_t n) { *credited_ptr += n; },
      };
    });
    checkpointer_options o;
    o.batch_size = batch_size;
    o.interval = std::chrono::milliseconds(100);
    o.max_in_flight = max_in_flight;
    o.resume = checkpoint_record{position{10, 100}, 7, {}};
    o.sink = sink;
    o.detached = false;
    cp = spawn_checkpointer(*sys, o);
    if (wired) caf::anon_send(cp, fake_listener);
    sched->run();
  }

  ~fixture() {
    caf::anon_send_exit(cp, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(fake_listener, caf::exit_reason::user_shutdown);
    sched->run();
  }

  static event_batch events(size_t n, uint64_t first_seq = 1) {
    event_batch b;
    for (size_t i = 0; i < n; ++i) {
      auto ev = std::make_shared<event>();
      ev->seq = first_seq + i;
      ev->pos = position{11 + i / 2, static_cast<int64_t>(200 + i)};
      b.push_back(ev);
    }
    return b;
  }

  void admit(const event_batch& b) {
    caf::anon_send(cp, admit_atom::value, b);
    sched->run();
  }
  void finish(uint64_t seq) {
    caf::anon_send(cp, finish_atom::value, std::vector<uint64_t>{seq});
    sched->run();
  }
  checkpoint_record flush() {
    caf::scoped_actor self{*sys};
    checkpoint_record out;
    auto rh = self->request(cp, caf::infinite, flush_atom::value);
    sched->run();
    rh.receive([&](const checkpoint_record& r) { out = r; },
               [](const caf::error& e) { FAIL(caf::to_string(e)); });
    return out;
  }
};

}  // namespace

TEST_SUITE("checkpointer") {
  TEST_CASE("saves the contiguous prefix in batches, on ticks and on flush") {
    fixture f{2};
    auto b = fixture::events(4);
    f.admit(b);
    f.finish(2);
    f.finish(3);
    CHECK(f.sink->saves.empty());  // event 1 unfinished: the watermark cannot move
    f.finish(1);
    REQUIRE(f.sink->saves.size() == 1);  // 3 events into the watermark >= batch of 2
    CHECK(f.sink->saves[0].pos == b[2]->pos);
    CHECK(f.sink->saves[0].events_total == 7 + 3);
    f.finish(4);
    CHECK(f.sink->saves.size() == 1);  // 1 < batch: waits for the tick
    f.sched->advance_time(std::chrono::milliseconds(100));
    f.sched->run();
    REQUIRE(f.sink->saves.size() == 2);
    CHECK(f.sink->saves[1].pos == b[3]->pos);
    auto r = f.flush();
    CHECK(r.pos == b[3]->pos);
    CHECK(f.sink->saves.size() == 2);  // nothing new: flush does not write again
  }

  TEST_CASE("credits flow back to the listener for every finished event") {
    fixture f{100, 8};  // credit batch = max(1, min(256, 8/4)) = 2
    f.admit(fixture::events(5));
    for (uint64_t s : {5, 1, 3}) f.finish(s);
    CHECK(*f.credited == 2);
    f.sched->advance_time(std::chrono::milliseconds(100));  // tick flushes the rest
    f.sched->run();
    CHECK(*f.credited == 3);
  }

  TEST_CASE("credits counted before the credit sink is known are kept, then sent") {
    fixture f{100, 8, false};
    f.admit(fixture::events(3));
    for (uint64_t s : {1, 2, 3}) f.finish(s);
    f.sched->advance_time(std::chrono::milliseconds(100));  // a tick without a sink
    f.sched->run();
    CHECK(*f.credited == 0);
    caf::anon_send(f.cp, f.fake_listener);
    f.sched->run();
    CHECK(*f.credited == 3);
  }

  TEST_CASE("a failing save keeps the watermark dirty and retries on the next tick") {
    fixture f{1};
    auto b = fixture::events(2);
    f.admit(b);
    f.sink->failing = true;
    f.finish(1);
    CHECK(f.sink->saves.empty());
    f.sink->failing = false;
    f.sched->advance_time(std::chrono::milliseconds(100));
    f.sched->run();
    REQUIRE(f.sink->saves.size() == 1);
    CHECK(f.sink->saves[0].pos == b[0]->pos);
  }

  TEST_CASE("property: no saved checkpoint passes an unfinished event") {
    bool ok = rc::check("random completion orders, batch sizes, ticks and crash points", [] {
      const auto n = *rc::gen::inRange<size_t>(1, 60);
      const auto batch = *rc::gen::inRange<uint32_t>(1, 10);
      auto order = *rc::gen::unique<std::vector<uint64_t>>(n, rc::gen::inRange<uint64_t>(1, n + 1));
      const auto crash_after = *rc::gen::inRange<size_t>(0, n + 1);
      const auto ticks = *rc::gen::container<std::vector<bool>>(n, rc::gen::arbitrary<bool>());
      fixture f{batch, static_cast<uint32_t>(n)};
      auto evs = fixture::events(n);
      f.admit(evs);
      std::set<uint64_t> finished;
      for (size_t k = 0; k < crash_after; ++k) {
        f.finish(order[k]);
        finished.insert(order[k]);
        if (ticks[k]) {
          f.sched->advance_time(std::chrono::milliseconds(100));
          f.sched->run();
        }
      }
      // Crash here: whatever was saved last is what a restart resumes from.
      for (const auto& s : f.sink->saves)
        for (const auto& ev : evs)
          if (!(s.pos < ev->pos)) RC_ASSERT(finished.count(ev->seq) == 1);
      // A graceful stop instead saves exactly the finished prefix.
      auto r = f.flush();
      size_t prefix = 0;
      while (prefix < n && finished.count(prefix + 1)) ++prefix;
      RC_ASSERT(r.pos == (prefix == 0 ? position{10, 100} : evs[prefix - 1]->pos));
      RC_ASSERT(r.events_total == 7 + prefix);
    });
    CHECK(ok);
  }
}
