// The action pool on CAF's test_coordinator, driven by a fake asynchronous
// executor whose calls the test completes in any order, with successes,
// retryable and final failures, retries (time advanced by hand) and an
// optional circuit breaker. Properties checked on every run:
// - per lane (observer, entity), events start in capture order, and an event
//   starts only after the lane's previous event is done (succeeded or in the DLQ);
// - in sequential mode, an observer's actions of one event start one at a time
//   in index order;
// - attempts in flight never exceed max_concurrent_actions, nor, with adaptive
//   concurrency, its endpoint's max_limit;
// - an event is finished exactly once, only after all its actions are done;
// - every event finishes; every action ends in success or the DLQ, exactly once;
// - with batched actions (batch_size 2-3, completed whole), all of the above,
//   a batch counting as one request.

#include "actors/pipeline/action_pool.hpp"

#include "messages/attempt.hpp"
#include "messages/breaker.hpp"
#include "messages/checkpoint.hpp"
#include "runtime/core/circuit_breaker.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/exec/executor.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <map>
#include <set>

using namespace fraiseql;

namespace {

struct call {
  uint64_t seq;
  uint32_t observer;
  uint32_t action;
  uint32_t attempt;  // the try's number (1 on the first)
  attempt_callback done;
};

/// Holds every call until the test completes it; endpoint = "ep-<observer>".
struct fake_executor : action_executor {
  std::vector<call> pending;
  std::vector<std::tuple<uint64_t, uint32_t, uint32_t>> started;  // (seq, observer, action)
  std::optional<attempt_outcome> start(const attempt_request& req, attempt_callback done) override {
    pending.push_back(call{req.ev->seq, req.observer, req.action, req.attempt, std::move(done)});
    started.emplace_back(req.ev->seq, req.observer, req.action);
    return std::nullopt;
  }
  std::string endpoint(const attempt_request& req) const override {
    return "ep-" + std::to_string(req.observer);
  }
  bool adaptive() const override { return true; }

  struct batch_call {
    uint32_t observer = 0;
    uint32_t action = 0;
    std::vector<uint64_t> seqs;
    std::vector<std::string> keys;
    uint32_t attempt;
    attempt_callback done;
  };
  std::vector<batch_call> batches;
  std::set<uint64_t> unrenderable;  // seqs start_batch rejects
  std::optional<attempt_outcome> start_batch(const batch_request& req,
                                             std::vector<std::pair<size_t, std::string>>& rejected,
                                             attempt_callback done) override {
    batch_call c;
    for (size_t i = 0; i < req.events.size(); ++i) {
      if (unrenderable.count(req.events[i]->seq)) {
        rejected.emplace_back(i, "render error");
        continue;
      }
      c.seqs.push_back(req.events[i]->seq);
      c.keys.push_back(req.idempotency_keys[i]);
      started.emplace_back(req.events[i]->seq, req.observer, req.action);
    }
    c.observer = req.observer;
    c.action = req.action;
    if (c.seqs.empty()) return attempt_outcome::failure("no event of the batch rendered", false);
    c.attempt = req.attempt;
    c.done = std::move(done);
    batches.push_back(std::move(c));
    return std::nullopt;
  }
};

struct log_book {
  std::vector<uint64_t> finished;
  std::vector<std::string> buried_keys;
  std::vector<std::tuple<uint64_t, std::string, uint32_t, std::string>>
      buried;                          // seq, observer, action, error
  std::vector<uint32_t> buried_tries;  // dlq_entry::attempts of each buried action
};

struct fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<fake_executor> exec = std::make_shared<fake_executor>();
  std::shared_ptr<log_book> book = std::make_shared<log_book>();
  std::shared_ptr<const observer_registry> registry;
  finish_sink cp;
  dlq_actor dlq;
  action_pool_actor pool;

  fixture(const std::vector<observer_config>& observers, bool concurrent, uint32_t max_concurrent,
          breaker_settings breakers, std::optional<adaptive_limit_settings> limits = {}) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.verbosity", caf::atom("quiet"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    std::vector<std::string> errors;
    registry = observer_registry::build(observers, errors);
    REQUIRE(errors.empty());
    auto b = book;
    // The pool sees the checkpointer only as a finish_sink.
    cp = sys->spawn([b]() -> finish_sink::behavior_type {
      return {
          [b](finish_atom, const std::vector<uint64_t>& seqs) {
            b->finished.insert(b->finished.end(), seqs.begin(), seqs.end());
          },
      };
    });
    dlq = sys->spawn([b]() -> dlq_actor::behavior_type {
      return {[b](bury_atom, const dlq_entry& e) -> int64_t {
        b->buried.emplace_back(e.ev->seq, e.observer_name, e.action_index, e.last_error);
        b->buried_tries.push_back(e.attempts);
        b->buried_keys.push_back(e.idempotency_key);
        return static_cast<int64_t>(b->buried.size());
      }};
    });
    action_pool_options o;
    o.registry = registry;
    o.executors["webhook"] = exec;
    o.enable_concurrent = concurrent;
    o.max_concurrent_actions = max_concurrent;
    o.breakers = breakers;
    o.adaptive = limits.has_value();
    if (limits) o.limits = *limits;
    pool = spawn_action_pool(*sys, o, cp, dlq);
    sched->run();
  }

  ~fixture() {
    for (auto& c : exec->pending) c.done(attempt_outcome::failure("test over", false));
    for (auto& c : exec->batches) c.done(attempt_outcome::failure("test over", false));
    sched->run();
    caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(cp, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(dlq, caf::exit_reason::user_shutdown);
    sched->run();
  }

  std::vector<breaker_status> breakers() {
    caf::scoped_actor self{*sys};
    std::vector<breaker_status> out;
    auto rh = self->request(pool, caf::infinite, status_atom::value, breakers_atom::value);
    sched->run();
    rh.receive([&](std::vector<breaker_status>& v) { out = std::move(v); },
               [](const caf::error& e) { FAIL(caf::to_string(e)); });
    return out;
  }
};

observer_config make_observer(const std::string& name, uint32_t actions, uint32_t max_attempts,
                              uint32_t batch_size = 1) {
  observer_config o;
  o.name = name;
  o.event_type = "*";
  o.entity = "*";
  for (uint32_t a = 0; a < actions; ++a) {
    action_config ac;
    ac.type = "webhook";
    ac.webhook = webhook_action_config{};
    ac.webhook->url = "http://fake/" + name;
    ac.webhook->batch_size = batch_size;
    ac.webhook->batch_max_wait_ms = 10;
    ac.where = "observers[x].actions[" + std::to_string(a) + "]";
    o.actions.push_back(ac);
  }
  o.retry.max_attempts = max_attempts;
  o.retry.initial_delay_ms = 10;
  o.retry.max_delay_ms = 40;
  o.retry.jitter = 0.5;
  return o;
}

event_ptr make_event(uint64_t seq, const std::string& entity_id) {
  auto ev = std::make_shared<event>();
  ev->seq = seq;
  ev->id = "ev-" + std::to_string(seq);
  ev->event_type = "INSERT";
  ev->entity_type = "Order";
  ev->entity_id = entity_id;
  ev->envelope = boost::json::object{{"id", ev->id}};
  ev->envelope_json = "{}";
  return ev;
}

}  // namespace

TEST_SUITE("action_pool") {
  TEST_CASE("a failed attempt is retried in place: tries 1..max_attempts, then the DLQ") {
    breaker_settings off;
    off.enabled = false;
    fixture f({make_observer("flaky", 1, 3)}, true, 10, off);
    caf::anon_send(f.pool, run_atom::value, make_event(1, "e1"), std::vector<uint32_t>{0});
    f.sched->run();
    for (uint32_t n = 1; n <= 3; ++n) {
      REQUIRE(f.exec->pending.size() == 1);
      CHECK(f.exec->pending[0].attempt == n);
      auto c = std::move(f.exec->pending[0]);
      f.exec->pending.clear();
      c.done(attempt_outcome::failure("HTTP 503", true));
      f.sched->run();
      CHECK(f.exec->pending.empty());  // waits for its backoff, holding no slot
      f.sched->advance_time(std::chrono::milliseconds(100));  // > max_delay_ms
      f.sched->run();
    }
    CHECK(f.exec->pending.empty());
    REQUIRE(f.book->buried.size() == 1);
    CHECK(std::get<3>(f.book->buried[0]) == "HTTP 503");
    CHECK(f.book->buried_tries == std::vector<uint32_t>{3});
    CHECK(f.book->finished == std::vector<uint64_t>{1});
  }

  TEST_CASE("an open breaker fails calls fast, retries after the probe time, one endpoint only") {
    breaker_settings bs;
    bs.sample_size = 2;
    bs.failure_threshold = 1.0;
    bs.success_threshold = 1.0;
    bs.half_open_probes = 1;
    bs.timeout = std::chrono::milliseconds(5000);
    fixture f({make_observer("dead", 1, 100), make_observer("alive", 1, 3)}, true, 10, bs);
    for (uint64_t s = 1; s <= 4; ++s) {
      caf::anon_send(f.pool, run_atom::value, make_event(s, "e" + std::to_string(s)),
                     std::vector<uint32_t>{0, 1});
    }
    f.sched->run();
    REQUIRE(f.exec->pending.size() == 8);
    // Fail the dead observer's calls, succeed the alive one's.
    auto pending = std::move(f.exec->pending);
    f.exec->pending.clear();
    for (auto& c : pending)
      c.done(c.observer == 0 ? attempt_outcome::failure("HTTP 500", true)
                             : attempt_outcome::success());
    f.sched->run();
    auto st = f.breakers();
    REQUIRE(st.size() == 2);
    CHECK(st[0].endpoint == "ep-0");
    CHECK(st[0].state == breaker_state::open);
    CHECK(st[1].endpoint == "ep-1");
    CHECK(st[1].state == breaker_state::closed);
    // Retries come due well before the breaker's timeout: each fails fast.
    const auto calls_before = f.exec->started.size();
    for (int i = 0; i < 20; ++i) {
      f.sched->advance_time(std::chrono::milliseconds(200));
      f.sched->run();
    }
    CHECK(f.exec->started.size() == calls_before);  // 4 s: no call reached the endpoint
    st = f.breakers();
    CHECK(st[0].rejected >= 4);
    CHECK(st[0].retry_in_ms > 0);
    CHECK(f.book->finished.empty());
    // Past the timeout one probe goes out; its success closes the breaker and
    // the remaining events' retries then reach the endpoint.
    f.sched->advance_time(std::chrono::milliseconds(1200));
    f.sched->run();
    REQUIRE(f.exec->pending.size() == 1);
    for (int round = 0; round < 50 && f.book->finished.size() < 4; ++round) {
      auto p = std::move(f.exec->pending);
      f.exec->pending.clear();
      for (auto& c : p) c.done(attempt_outcome::success());
      f.sched->advance_time(std::chrono::milliseconds(100));
      f.sched->run();
    }
    CHECK(f.book->finished.size() == 4);
    CHECK(f.book->buried.empty());
    CHECK(f.breakers()[0].state == breaker_state::closed);
  }

  TEST_CASE("adaptive concurrency: a slow endpoint holds back only its own attempts") {
    breaker_settings off;
    off.enabled = false;
    adaptive_limit_settings ls;
    ls.initial_limit = 4;
    ls.max_limit = 4;
    ls.baseline_samples = 1;
    // Two observers = two endpoints (ep-0 slow, ep-1 fast); pool cap 100.
    fixture f({make_observer("slow", 1, 3), make_observer("fast", 1, 3)}, true, 100, off, ls);
    for (uint64_t s = 1; s <= 20; ++s)
      caf::anon_send(f.pool, run_atom::value, make_event(s, "e" + std::to_string(s)),
                     std::vector<uint32_t>{0, 1});
    f.sched->run();
    auto count = [&](uint32_t obs) {
      size_t n = 0;
      for (const auto& c : f.exec->pending) n += c.observer == obs ? 1 : 0;
      return n;
    };
    // The first probe pins each endpoint to min_limit (1).
    CHECK(count(0) == 1);
    CHECK(count(1) == 1);
    // The fast endpoint answers everything at once, round after round; the
    // slow one answers nothing. Its attempts wait for its own slots; the fast
    // endpoint's all finish, never more than max_limit in flight at once.
    for (int round = 0; round < 40; ++round) {
      std::vector<call> keep;
      auto p = std::move(f.exec->pending);
      f.exec->pending.clear();
      for (auto& c : p) {
        if (c.observer == 0)
          keep.push_back(std::move(c));
        else
          c.done(attempt_outcome::success());
      }
      for (auto& c : keep) f.exec->pending.push_back(std::move(c));
      f.sched->advance_time(std::chrono::milliseconds(5));
      f.sched->run();
      CHECK(count(0) == 1);
      CHECK(count(1) <= 4);
    }
    CHECK(count(1) == 0);
    size_t fast_calls = 0;
    for (const auto& [seq, o, a] : f.exec->started) fast_calls += o == 1 ? 1 : 0;
    CHECK(fast_calls == 20);
    // Now the slow endpoint answers; each answer frees a slot for the next.
    for (int round = 0; round < 100 && f.book->finished.size() < 20; ++round) {
      auto p = std::move(f.exec->pending);
      f.exec->pending.clear();
      for (auto& c : p) c.done(attempt_outcome::success());
      f.sched->advance_time(std::chrono::milliseconds(5));
      f.sched->run();
      CHECK(count(0) <= 4);
    }
    CHECK(f.book->finished.size() == 20);
    CHECK(f.book->buried.empty());
  }

  TEST_CASE("adaptive concurrency: 429 and 503 answers shrink an endpoint's limit") {
    breaker_settings off;
    off.enabled = false;
    adaptive_limit_settings ls;
    ls.initial_limit = 8;
    ls.max_limit = 8;
    ls.baseline_samples = 1;
    ls.window_samples = 1;
    fixture f({make_observer("shedding", 1, 100)}, true, 100, off, ls);
    for (uint64_t s = 1; s <= 40; ++s)
      caf::anon_send(f.pool, run_atom::value, make_event(s, "e" + std::to_string(s)),
                     std::vector<uint32_t>{0});
    f.sched->run();
    REQUIRE(f.exec->pending.size() == 1);  // the probe
    auto answer_all = [&](bool overloaded) {
      auto p = std::move(f.exec->pending);
      f.exec->pending.clear();
      for (auto& c : p) {
        if (overloaded) {
          auto o = attempt_outcome::failure("HTTP 503", true);
          o.overloaded = true;
          c.done(std::move(o));
        } else {
          c.done(attempt_outcome::success());
        }
      }
      f.sched->advance_time(std::chrono::milliseconds(10));
      f.sched->run();
      return p.size();
    };
    answer_all(false);  // probe done: the limit is the initial 8
    CHECK(f.exec->pending.size() == 8);
    answer_all(true);  // a round of 503s halves it
    // Retries wait for their backoff; the next events fill the halved limit.
    CHECK(f.exec->pending.size() == 4);
    answer_all(true);
    CHECK(f.exec->pending.size() == 2);
  }

  TEST_CASE("batches: full ones go at once, a partial one after its wait, capture order") {
    breaker_settings off;
    off.enabled = false;
    fixture f({make_observer("batched", 1, 3, 4)}, true, 10, off);
    for (uint64_t s = 1; s <= 10; ++s)
      caf::anon_send(f.pool, run_atom::value, make_event(s, "e" + std::to_string(s)),
                     std::vector<uint32_t>{0});
    f.sched->run();
    CHECK(f.exec->pending.empty());  // nothing goes alone
    REQUIRE(f.exec->batches.size() == 2);
    CHECK(f.exec->batches[0].seqs == std::vector<uint64_t>{1, 2, 3, 4});
    CHECK(f.exec->batches[1].seqs == std::vector<uint64_t>{5, 6, 7, 8});
    CHECK(f.exec->batches[0].keys[0] == idempotency_key("ev-1", "batched", 0));
    f.sched->advance_time(std::chrono::milliseconds(10));  // batch_max_wait_ms
    f.sched->run();
    REQUIRE(f.exec->batches.size() == 3);
    CHECK(f.exec->batches[2].seqs == std::vector<uint64_t>{9, 10});
    for (auto& b : f.exec->batches) b.done(attempt_outcome::success());
    f.exec->batches.clear();
    f.sched->run();
    auto fin = f.book->finished;
    std::sort(fin.begin(), fin.end());
    CHECK(fin == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  }

  TEST_CASE("batches: one event per entity per batch; the next waits for the previous") {
    breaker_settings off;
    off.enabled = false;
    fixture f({make_observer("batched", 1, 3, 8)}, true, 10, off);
    // Entity a: 1, 3, 5; entity b: 2, 4.
    const char* ent[] = {"", "a", "b", "a", "b", "a"};
    for (uint64_t s = 1; s <= 5; ++s)
      caf::anon_send(f.pool, run_atom::value, make_event(s, ent[s]), std::vector<uint32_t>{0});
    f.sched->run();
    f.sched->advance_time(std::chrono::milliseconds(10));
    f.sched->run();
    for (std::vector<uint64_t> want :
         {std::vector<uint64_t>{1, 2}, std::vector<uint64_t>{3, 4}, std::vector<uint64_t>{5}}) {
      REQUIRE(f.exec->batches.size() == 1);
      CHECK(f.exec->batches[0].seqs == want);
      auto b = std::move(f.exec->batches[0]);
      f.exec->batches.clear();
      b.done(attempt_outcome::success());
      f.sched->run();
      f.sched->advance_time(std::chrono::milliseconds(10));
      f.sched->run();
    }
    CHECK(f.book->finished.size() == 5);
  }

  TEST_CASE("batches: retried whole, then each event dead-lettered on its own") {
    breaker_settings off;
    off.enabled = false;
    fixture f({make_observer("batched", 1, 3, 3)}, true, 10, off);
    f.exec->unrenderable = {2};
    for (uint64_t s = 1; s <= 3; ++s)
      caf::anon_send(f.pool, run_atom::value, make_event(s, "e" + std::to_string(s)),
                     std::vector<uint32_t>{0});
    f.sched->run();
    // Event 2 cannot be rendered: dead-lettered alone at once, the rest went.
    REQUIRE(f.book->buried.size() == 1);
    CHECK(std::get<0>(f.book->buried[0]) == 2);
    CHECK(std::get<3>(f.book->buried[0]) == "render error");
    for (uint32_t n = 1; n <= 3; ++n) {
      REQUIRE(f.exec->batches.size() == 1);
      CHECK(f.exec->batches[0].seqs == std::vector<uint64_t>{1, 3});  // the same batch each try
      CHECK(f.exec->batches[0].attempt == n);
      auto b = std::move(f.exec->batches[0]);
      f.exec->batches.clear();
      b.done(attempt_outcome::failure("HTTP 503", true));
      f.sched->run();
      f.sched->advance_time(std::chrono::milliseconds(100));
      f.sched->run();
    }
    CHECK(f.exec->batches.empty());
    REQUIRE(f.book->buried.size() == 3);
    std::set<uint64_t> buried;
    for (const auto& row : f.book->buried) buried.insert(std::get<0>(row));
    CHECK(buried == std::set<uint64_t>{1, 2, 3});
    CHECK(f.book->buried_tries[1] == 3);
    CHECK(f.book->buried_tries[2] == 3);
    // Each row carries its own event's key, so a redrive is per event.
    CHECK(std::set<std::string>(f.book->buried_keys.begin(), f.book->buried_keys.end()) ==
          std::set<std::string>{idempotency_key("ev-1", "batched", 0),
                                idempotency_key("ev-2", "batched", 0),
                                idempotency_key("ev-3", "batched", 0)});
    auto fin = f.book->finished;
    std::sort(fin.begin(), fin.end());
    CHECK(fin == std::vector<uint64_t>{1, 2, 3});
  }

  TEST_CASE("property: lane order, concurrency bound, finish only when done, nothing lost") {
    bool ok = rc::check("random completions, failures, retries and breakers", [] {
      const bool concurrent = *rc::gen::arbitrary<bool>();
      const auto max_concurrent = *rc::gen::inRange<uint32_t>(1, 6);
      const auto n_observers = *rc::gen::inRange<uint32_t>(1, 4);
      std::vector<observer_config> obs;
      for (uint32_t o = 0; o < n_observers; ++o)
        obs.push_back(make_observer("o" + std::to_string(o), *rc::gen::inRange<uint32_t>(1, 4),
                                    *rc::gen::inRange<uint32_t>(1, 4),
                                    *rc::gen::element<uint32_t>(1, 1, 2, 3)));
      breaker_settings bs;
      bs.enabled = *rc::gen::arbitrary<bool>();
      bs.sample_size = *rc::gen::inRange<uint32_t>(1, 5);
      bs.half_open_probes = *rc::gen::inRange<uint32_t>(1, 3);
      bs.timeout = std::chrono::milliseconds(*rc::gen::inRange(1, 100));
      std::optional<adaptive_limit_settings> limits;
      if (*rc::gen::arbitrary<bool>()) {
        adaptive_limit_settings ls;
        ls.max_limit = *rc::gen::inRange<uint32_t>(1, 4);
        ls.initial_limit = *rc::gen::inRange<uint32_t>(1, 4);
        ls.window_samples = *rc::gen::inRange<uint32_t>(1, 4);
        ls.baseline_samples = *rc::gen::inRange<uint32_t>(1, 3);
        ls.baseline_interval = std::chrono::milliseconds(*rc::gen::inRange(1, 200));
        limits = ls;
      }
      fixture f(obs, concurrent, max_concurrent, bs, limits);

      const auto n_events = *rc::gen::inRange<uint64_t>(1, 25);
      std::map<uint64_t, std::string> entity;
      std::map<uint64_t, std::vector<uint32_t>> matched;
      uint64_t sent = 0;
      // Per (seq, observer, action): done (success or buried).
      std::set<std::tuple<uint64_t, uint32_t, uint32_t>> succeeded;
      // Per lane (observer, entity): the last event that started there.
      std::map<std::pair<uint32_t, std::string>, uint64_t> lane_head;
      size_t checked_starts = 0;
      size_t checked_finished = 0;
      std::set<uint64_t> finished;

      auto action_done = [&](uint64_t seq, uint32_t o, uint32_t a) {
        if (succeeded.count({seq, o, a})) return true;
        for (const auto& [s, name, act, err] : f.book->buried)
          if (s == seq && name == obs[o].name && act == a) return true;
        return false;
      };
      auto observer_done = [&](uint64_t seq, uint32_t o) {
        for (uint32_t a = 0; a < obs[o].actions.size(); ++a)
          if (!action_done(seq, o, a)) return false;
        return true;
      };
      auto check_new_starts = [&] {
        // A batch is one request: one slot of the pool and of its endpoint.
        RC_ASSERT(f.exec->pending.size() + f.exec->batches.size() <= max_concurrent);
        if (limits) {
          std::map<uint32_t, uint32_t> per_endpoint;  // endpoint = observer
          for (const auto& c : f.exec->pending)
            RC_ASSERT(++per_endpoint[c.observer] <= limits->max_limit);
          for (const auto& b : f.exec->batches)
            RC_ASSERT(++per_endpoint[b.observer] <= limits->max_limit);
        }
        for (; checked_starts < f.exec->started.size(); ++checked_starts) {
          const auto [seq, o, a] = f.exec->started[checked_starts];
          RC_ASSERT(!action_done(seq, o, a));  // no call after an action is done
          const auto key = std::make_pair(o, entity.at(seq));
          auto it = lane_head.find(key);
          if (it != lane_head.end() && it->second != seq) {
            // A new event on the lane: later in capture order, and the previous one is done.
            RC_ASSERT(it->second < seq);
            RC_ASSERT(observer_done(it->second, o));
          }
          // Every earlier event of this lane that matched this observer is done.
          for (const auto& [s, m] : matched)
            if (s < seq && entity.at(s) == entity.at(seq) &&
                std::find(m.begin(), m.end(), o) != m.end())
              RC_ASSERT(observer_done(s, o));
          if (!concurrent)
            for (uint32_t b = 0; b < a; ++b) RC_ASSERT(action_done(seq, o, b));
          lane_head[key] = seq;
        }
        for (; checked_finished < f.book->finished.size(); ++checked_finished) {
          const auto seq = f.book->finished[checked_finished];
          RC_ASSERT(finished.insert(seq).second);  // once
          for (auto o : matched.at(seq)) RC_ASSERT(observer_done(seq, o));
        }
      };

      for (int step = 0; step < 2000; ++step) {
        if (finished.size() == n_events && sent == n_events) break;
        const int op = *rc::gen::inRange(0, 10);
        if (op < 3 && sent < n_events) {
          const uint64_t seq = ++sent;
          entity[seq] = *rc::gen::element<std::string>("a", "b", "c");
          std::vector<uint32_t> m;
          for (uint32_t o = 0; o < n_observers; ++o)
            if (*rc::gen::inRange(0, 4) > 0) m.push_back(o);
          matched[seq] = m;
          if (m.empty()) {
            finished.insert(seq);  // the router finishes unmatched events itself
            continue;
          }
          caf::anon_send(f.pool, run_atom::value, make_event(seq, entity[seq]), m);
        } else if (op < 8 && !f.exec->batches.empty() && *rc::gen::arbitrary<bool>()) {
          const auto k = *rc::gen::inRange<size_t>(0, f.exec->batches.size());
          auto b = std::move(f.exec->batches[k]);
          f.exec->batches.erase(f.exec->batches.begin() + static_cast<std::ptrdiff_t>(k));
          const int r = *rc::gen::inRange(0, 10);
          if (r < 6) {
            for (auto seq : b.seqs) succeeded.emplace(seq, b.observer, b.action);
            b.done(attempt_outcome::success());
          } else if (r < 9) {
            b.done(attempt_outcome::failure("HTTP 503", true));
          } else {
            b.done(attempt_outcome::failure("HTTP 400", false));
          }
        } else if (op < 8 && !f.exec->pending.empty()) {
          const auto k = *rc::gen::inRange<size_t>(0, f.exec->pending.size());
          auto c = std::move(f.exec->pending[k]);
          f.exec->pending.erase(f.exec->pending.begin() + static_cast<std::ptrdiff_t>(k));
          const int r = *rc::gen::inRange(0, 10);
          if (r < 6) {
            succeeded.emplace(c.seq, c.observer, c.action);
            c.done(attempt_outcome::success());
          } else if (r < 9) {
            auto o = attempt_outcome::failure("HTTP 503", true);
            o.overloaded = r == 8;
            c.done(std::move(o));
          } else {
            c.done(attempt_outcome::failure("HTTP 400", false));
          }
        } else {
          f.sched->advance_time(std::chrono::milliseconds(*rc::gen::inRange(1, 60)));
        }
        f.sched->run();
        check_new_starts();
      }
      // Drain: succeed everything, let every retry come due.
      for (int round = 0; round < 500 && finished.size() < n_events; ++round) {
        auto p = std::move(f.exec->pending);
        f.exec->pending.clear();
        for (auto& c : p) {
          succeeded.emplace(c.seq, c.observer, c.action);
          c.done(attempt_outcome::success());
        }
        auto bs = std::move(f.exec->batches);
        f.exec->batches.clear();
        for (auto& b : bs) {
          for (auto seq : b.seqs) succeeded.emplace(seq, b.observer, b.action);
          b.done(attempt_outcome::success());
        }
        f.sched->run();
        check_new_starts();
        f.sched->advance_time(std::chrono::milliseconds(50));
        f.sched->run();
        check_new_starts();
        if (sent < n_events) {
          const uint64_t seq = ++sent;
          entity[seq] = "a";
          matched[seq] = {0};
          caf::anon_send(f.pool, run_atom::value, make_event(seq, "a"), std::vector<uint32_t>{0});
        }
      }
      RC_ASSERT(finished.size() == n_events);
      for (const auto& [seq, m] : matched)
        for (auto o : m)
          for (uint32_t a = 0; a < obs[o].actions.size(); ++a) {
            // Exactly one terminal result per action: success or one DLQ row.
            size_t rows = 0;
            for (const auto& [s, name, act, err] : f.book->buried)
              rows += (s == seq && name == obs[o].name && act == a) ? 1 : 0;
            RC_ASSERT(rows + succeeded.count({seq, o, a}) == 1u);
          }
    });
    CHECK(ok);
  }
}
