#include "actors/pipeline/action_pool.hpp"

#include "runtime/core/clock.hpp"

#include "messages/attempt.hpp"
#include "messages/breaker.hpp"
#include "messages/job.hpp"
#include "runtime/core/audit.hpp"
#include "runtime/core/backoff.hpp"
#include "runtime/core/circuit_breaker.hpp"
#include "runtime/exec/executor.hpp"
#include "runtime/ops/logging.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <unordered_map>
#include <utility>

namespace fraiseql {

namespace {

/// An attempt: one action of one event (or of one redrive) as the pool runs
/// it, under one id from its first try until it succeeds or is dead-lettered;
/// a retryable failure is tried again in place (`tries` counts the tries, the
/// number compared with the retry policy's max_attempts). Not a job of the job
/// queue (actors/jobs/): an async action's attempt ends once its job is durable.
struct attempt {
  std::chrono::steady_clock::time_point try_started;
  uint64_t seq = 0;
  uint32_t observer = 0;
  uint32_t action = 0;
  uint32_t tries = 0;
  int64_t first_try_ms = 0;
  std::string last_error;
  std::string lane;
  /// Breaker of the current try: its endpoint and admission ticket.
  std::string endpoint;
  circuit_breaker::ticket ticket;
  /// The current try was admitted by the breaker and must be recorded.
  bool breaker_pending = false;
  /// The current try failed fast (breaker open): nothing was called.
  bool rejected = false;
  /// `endpoint` is set (computed once per attempt: it depends only on the
  /// action and the event).
  bool endpoint_known = false;
  /// Adaptive concurrency: the current try holds a slot of its endpoint's
  /// limiter, taken at `limit_started`.
  bool limit_pending = false;
  adaptive_limit::ticket limit_ticket;
  circuit_breaker::time_point limit_started{};
  bool redrive = false;  // a DLQ redrive: no lane, no event entry
  /// A batch (webhook batch_size > 1): one request for `members`, attempts
  /// of one action (at most one per lane, so per-entity order holds across
  /// batches), in capture order. No lane of its own; retried whole; after its
  /// last try each member goes to the DLQ on its own.
  bool is_batch = false;
  std::vector<uint64_t> members;
};

/// A batch being filled: its members so far and when it goes regardless.
struct open_batch {
  std::vector<uint64_t> members;
  circuit_breaker::time_point deadline{};
};

/// A redrive in progress: its event and who waits for the outcome.
struct redrive_entry {
  event_ptr ev;
  caf::typed_response_promise<bool, uint32_t, std::string> promise;
};

struct lane_state {
  std::deque<uint64_t> queue;  // event seqs, head is running
  uint32_t next_action = 0;    // sequential mode: next action index to start
  uint32_t open = 0;           // attempts of the head event not yet finished
};

/// Adaptive concurrency of one endpoint: its limiter and the attempts waiting
/// for one of its slots.
struct endpoint_limit {
  adaptive_limit lim;
  std::deque<uint64_t> parked;
  circuit_breaker::time_point last_used;
  /// Metrics: when and at what limit it was last exported.
  circuit_breaker::time_point published{};
  uint32_t published_limit = 0;
  uint32_t published_in_flight = 0;
};

struct event_entry {
  event_ptr ev;
  uint32_t open_lanes = 0;
};

/// Attempt outcomes posted by executor threads. The first one of a burst sends
/// the pool one `done` message; the rest ride along: one mailbox message and
/// at most one wake-up per burst of completions, not per attempt.
struct completion_inbox {
  std::mutex mtx;
  std::vector<std::pair<uint64_t, attempt_outcome>> items;

  /// True when the inbox was empty, i.e. the caller must notify the pool.
  bool post(uint64_t id, attempt_outcome o) {
    std::lock_guard<std::mutex> g{mtx};
    items.emplace_back(id, std::move(o));
    return items.size() == 1;
  }
  std::vector<std::pair<uint64_t, attempt_outcome>> take() {
    std::lock_guard<std::mutex> g{mtx};
    return std::exchange(items, {});
  }
};

}  // namespace

struct action_pool_state {
  static inline const char* name = "action_pool";
  using pointer = action_pool_actor::stateful_pointer<action_pool_state>;

  pointer self = nullptr;
  action_pool_options cfg;
  finish_sink checkpointer;
  dlq_actor dlq;
  std::unordered_map<uint64_t, event_entry> events;
  std::unordered_map<std::string, lane_state> lanes;
  std::unordered_map<uint64_t, attempt> attempts;
  std::unordered_map<uint64_t, redrive_entry> redrives;  // by attempt id
  std::deque<uint64_t> ready;                            // attempts waiting for a concurrency slot
  std::vector<uint64_t> finished;                        // events finished since the last flush
  std::vector<uint64_t> to_enqueue;  // job queue: async attempts waiting for the next enqueue
  bool enqueue_in_flight = false;    // job queue: one enqueue request at a time
  uint32_t running = 0;
  uint64_t next_attempt = 1;
  uint64_t finished_events = 0;
  std::mt19937_64 rng{std::random_device{}()};
  std::unique_ptr<breaker_registry> breakers;
  std::unordered_map<std::string, endpoint_limit> limits;            // adaptive concurrency
  std::map<std::pair<uint32_t, uint32_t>, open_batch> open_batches;  // (observer, action)
  std::shared_ptr<completion_inbox> inbox = std::make_shared<completion_inbox>();
  bool pumping = false;
  bool lease_wait = false;  // a wake_atom is on its way (the lease's deadline passed)

  /// The actor clock: simulated under CAF's test coordinator.
  circuit_breaker::time_point now() const { return self->clock().now(); }

  /// Exports a breaker's state change to metrics.
  void breaker_changed(const std::string& ep, breaker_state before) {
    if (!cfg.stats) return;
    const auto after = breakers->state(ep, now());
    if (after != before) cfg.stats->breaker_state(ep, static_cast<int>(after));
  }

  void run(const event_ptr& ev, const std::vector<uint32_t>& observers) {
    events.emplace(ev->seq, event_entry{ev, static_cast<uint32_t>(observers.size())});
    for (auto o : observers) {
      std::string key = std::to_string(o);
      key += '\x1f';
      key += ev->entity_type;
      key += '\x1f';
      key += ev->entity_id;
      auto& lane = lanes[key];
      lane.queue.push_back(ev->seq);
      if (lane.queue.size() == 1) start_lane(key, o);
    }
    pump();
  }

  void retry(uint64_t id) {
    if (attempts.count(id) == 0) return;
    ready.push_back(id);
    pump();
  }

  void make_attempt(uint64_t seq, uint32_t observer, uint32_t action, const std::string& lane) {
    auto id = next_attempt++;
    attempt a;
    a.seq = seq;
    a.observer = observer;
    a.action = action;
    a.lane = lane;
    attempts.emplace(id, std::move(a));
    if (is_async(observer, action)) {
      // Job queue: enqueued with the rest of this mailbox burst (one INSERT).
      if (to_enqueue.empty()) self->send(self, flush_atom::value);
      to_enqueue.push_back(id);
      return;
    }
    if (batch_size(observer, action) > 1) return add_to_batch(id, observer, action);
    ready.push_back(id);
  }

  // --- batches (webhook batch_size > 1) ------------------------------------------

  uint32_t batch_size(uint32_t observer, uint32_t action) const {
    if (cfg.dry_run) return 1;
    const auto& ac = cfg.registry->config(observer).actions[action];
    return ac.webhook ? ac.webhook->batch_size : 1;
  }

  void add_to_batch(uint64_t id, uint32_t observer, uint32_t action) {
    const auto key = std::make_pair(observer, action);
    auto& b = open_batches[key];
    if (b.members.empty()) {
      const auto wait = std::chrono::milliseconds(
          cfg.registry->config(observer).actions[action].webhook->batch_max_wait_ms);
      b.deadline = now() + wait;
      self->delayed_send(self, wait, flush_atom::value);
    }
    b.members.push_back(id);
    if (b.members.size() >= batch_size(observer, action)) close_batch(key);
  }

  /// Turns an open batch into one ready attempt (the caller pumps).
  void close_batch(std::pair<uint32_t, uint32_t> key) {
    auto it = open_batches.find(key);
    if (it == open_batches.end()) return;
    auto members = std::move(it->second.members);
    open_batches.erase(it);
    if (members.empty()) return;
    std::sort(members.begin(), members.end(),
              [this](uint64_t x, uint64_t y) { return attempts.at(x).seq < attempts.at(y).seq; });
    attempt b;
    b.observer = key.first;
    b.action = key.second;
    b.is_batch = true;
    b.members = std::move(members);
    const auto id = next_attempt++;
    attempts.emplace(id, std::move(b));
    ready.push_back(id);
  }

  /// Closes the batches whose wait is over (on flush_atom, sent when each opened).
  void flush_due_batches() {
    const auto t = now();
    std::vector<std::pair<uint32_t, uint32_t>> due;
    for (const auto& [key, b] : open_batches)
      if (b.deadline <= t) due.push_back(key);
    for (const auto& key : due) close_batch(key);
    if (!due.empty()) pump();
  }

  /// A member's own idempotency key (as if it had been delivered alone).
  std::string member_key(uint64_t member) const {
    const auto& m = attempts.at(member);
    return idempotency_key(events.at(m.seq).ev->id, cfg.registry->config(m.observer).name,
                           m.action);
  }

  std::optional<attempt_outcome> start_batch(uint64_t id, attempt& a, action_executor& ex,
                                             attempt_callback cb) {
    const auto& oc = cfg.registry->config(a.observer);
    batch_request req;
    req.observer = a.observer;
    req.action = a.action;
    req.observer_cfg = &oc;
    req.action_cfg = &oc.actions[a.action];
    req.attempt = a.tries;
    if (cfg.enable_concurrent)
      req.timeout_cap = std::chrono::milliseconds(cfg.concurrent_timeout_ms);
    req.events.reserve(a.members.size());
    req.idempotency_keys.reserve(a.members.size());
    for (auto m : a.members) {
      req.events.push_back(events.at(attempts.at(m).seq).ev.get());
      req.idempotency_keys.push_back(member_key(m));
    }
    std::vector<std::pair<size_t, std::string>> rejected;
    auto sync = ex.start_batch(req, rejected, std::move(cb));
    if (!rejected.empty()) {
      // Events that cannot be rendered fail alone, finally: the rest went.
      std::vector<bool> out(a.members.size(), false);
      for (const auto& [i, err] : rejected) out[i] = true;
      std::vector<uint64_t> keep;
      for (size_t i = 0; i < a.members.size(); ++i)
        if (!out[i]) keep.push_back(a.members[i]);
      for (const auto& [i, err] : rejected) bury(a.members[i], err, a.tries, a.first_try_ms);
      a.members = std::move(keep);
    }
    (void)id;
    return sync;
  }

  /// Writes the DLQ row of one attempt (a single one, or a member of a batch on
  /// its own: redrive works per event); the attempt is done once it is durable.
  void bury(uint64_t member, const std::string& error, uint32_t tries, int64_t first_ms) {
    const auto& m = attempts.at(member);
    const auto& oc = cfg.registry->config(m.observer);
    const auto& ev = events.at(m.seq).ev;
    if (cfg.trace) cfg.trace->attempt(ev->id, m.observer, m.action, tries, "dead-lettered", error);
    dlq_entry e;
    e.ev = ev;
    e.observer_name = oc.name;
    e.action_index = m.action;
    e.action_type = oc.actions[m.action].type;
    e.idempotency_key = member_key(member);
    e.last_error = error;
    e.attempts = tries;
    e.first_attempt_ms = first_ms;
    e.last_attempt_ms = unix_ms();
    auto* s = self;
    self->request(dlq, caf::infinite, bury_atom::value, std::move(e))
        .then(
            [s, member, obs = m.observer](int64_t) {
              auto& st = s->state;
              if (st.cfg.stats) st.cfg.stats->dlq_item(obs);
              st.attempt_done(member);
              st.pump();
            },
            [member](const caf::error& err) {
              spdlog::error("batch member {}: DLQ write failed, event stays unfinished: {}", member,
                            caf::to_string(err));
            });
  }

  /// The outcome of a batch's try: every member's.
  void batch_outcome(uint64_t id, attempt_outcome o) {
    auto& a = attempts.at(id);
    const auto& oc = cfg.registry->config(a.observer);
    if (o.ok) {
      auto members = std::move(a.members);
      const auto tries = a.tries;
      attempts.erase(id);
      for (auto m : members) {
        if (cfg.trace) {
          const auto& ma = attempts.at(m);
          cfg.trace->attempt(events.at(ma.seq).ev->id, ma.observer, ma.action, tries, "succeeded",
                             "");
        }
        attempt_done(m);
      }
      return pump();
    }
    a.last_error = o.error;
    if (o.retryable && a.tries < oc.retry.max_attempts) {
      std::uniform_real_distribution<double> u(0.0, 1.0);
      auto delay = backoff_delay(oc.retry, a.tries, u(rng));
      if (o.retry_after)
        delay = std::max(delay, std::min(*o.retry_after, std::chrono::milliseconds(3600 * 1000)));
      spdlog::debug(
          "observer '{}' action {}: batch of {} events, attempt {} failed ({}), retry "
          "in {} ms",
          oc.name, a.action, a.members.size(), a.tries, o.error, delay.count());
      if (cfg.trace)
        for (auto m : a.members)
          cfg.trace->attempt(events.at(attempts.at(m).seq).ev->id, a.observer, a.action, a.tries,
                             "retrying", o.error);
      self->delayed_send(self, delay, retry_atom::value, id);
      return pump();
    }
    if (!leading()) {
      self->delayed_send(self, std::chrono::milliseconds(50), retry_atom::value, id);
      return pump();
    }
    auto members = std::move(a.members);
    const auto tries = a.tries;
    const auto first = a.first_try_ms;
    attempts.erase(id);
    for (auto m : members) bury(m, o.error, tries, first);
    pump();
  }

  // --- job queue ---------------------------------------------------------------

  bool is_async(uint32_t observer, uint32_t action) const {
    return cfg.jobs && !cfg.dry_run && cfg.registry->config(observer).actions[action].async;
  }

  /// Sends the async attempts collected so far to the job writer as jobs;
  /// they are done for their events once it confirms the commit. One request
  /// in flight at a time, so a burst arriving during a write becomes the next
  /// single INSERT.
  void send_enqueue() {
    if (enqueue_in_flight || to_enqueue.empty()) return;
    auto ids = std::exchange(to_enqueue, {});
    std::vector<job_spec> specs;
    specs.reserve(ids.size());
    for (auto id : ids) {
      const auto& a = attempts.at(id);
      const auto& oc = cfg.registry->config(a.observer);
      job_spec s;
      s.ev = events.at(a.seq).ev;
      s.observer_name = oc.name;
      s.action_index = a.action;
      s.action_type = oc.actions[a.action].type;
      s.idempotency_key = idempotency_key(s.ev->id, oc.name, a.action);
      s.max_attempts = oc.retry.max_attempts;
      specs.push_back(std::move(s));
    }
    enqueue_in_flight = true;
    auto* s = self;
    self->request(cfg.jobs, caf::infinite, enqueue_atom::value, std::move(specs))
        .then(
            [s, ids](uint64_t) {
              auto& st = s->state;
              st.enqueue_in_flight = false;
              for (auto id : ids) {
                if (st.cfg.audit) st.audit_enqueued(id);  // audit trail
                st.attempt_done(id);
              }
              st.send_enqueue();
              st.pump();
            },
            [s, n = ids.size()](const caf::error& err) {
              // The events stay unfinished: the checkpoint cannot pass them, and
              // they are redelivered (and enqueued) after a restart.
              s->state.enqueue_in_flight = false;
              spdlog::error("job queue: {} jobs not enqueued, their events stay unfinished: {}", n,
                            caf::to_string(err));
            });
  }

  // --- audit trail (actors/history/audit): records only, never waits -------------

  void audit_outcome(const attempt& a, const attempt_outcome& o) {
    const auto& oc = cfg.registry->config(a.observer);
    const bool retry = !o.ok && (!leading() || (o.retryable && a.tries < oc.retry.max_attempts));
    const std::chrono::duration<double, std::milli> took =
        std::chrono::steady_clock::now() - a.try_started;
    if (!a.is_batch)
      return audit_attempt(*cfg.audit, *events.at(a.seq).ev, *cfg.registry, a.observer, a.action,
                           a.tries, o, retry, took.count());
    // A batch's try is an attempt of each of its events.
    for (auto m : a.members)
      audit_attempt(*cfg.audit, *events.at(attempts.at(m).seq).ev, *cfg.registry, a.observer,
                    a.action, a.tries, o, retry, took.count());
  }

  void audit_enqueued(uint64_t id) {
    const auto& a = attempts.at(id);
    audit_attempt(*cfg.audit, *events.at(a.seq).ev, *cfg.registry, a.observer, a.action, 1,
                  attempt_outcome::success(), false, 0, "enqueued");
  }

  /// Starts the head event of a lane: all its actions (concurrent mode) or the first.
  void start_lane(const std::string& key, uint32_t observer) {
    auto& lane = lanes.at(key);
    auto seq = lane.queue.front();
    const auto n = static_cast<uint32_t>(cfg.registry->config(observer).actions.size());
    if (cfg.enable_concurrent) {
      lane.open = n;
      lane.next_action = n;
      for (uint32_t a = 0; a < n; ++a) make_attempt(seq, observer, a, key);
    } else {
      lane.open = 1;
      lane.next_action = 1;
      make_attempt(seq, observer, 0, key);
    }
  }

  /// False once the leader lease's deadline has passed: start nothing more.
  bool leading() const { return !cfg.lease || cfg.lease->valid(); }

  /// Looks again shortly: a late renewal may still extend the lease (if it
  /// does not, the checkpointer stops the node meanwhile).
  void wait_for_lease() {
    if (lease_wait) return;
    lease_wait = true;
    self->delayed_send(self, std::chrono::milliseconds(50), wake_atom::value);
  }

  void pump() {
    // Synchronous outcomes (log actions, fast-failed calls) re-enter pump()
    // from execute(); the outer loop serves them, so the stack stays flat.
    if (pumping) return;
    if (!ready.empty() && !leading()) return wait_for_lease();
    pumping = true;
    while (running < cfg.max_concurrent_actions && !ready.empty()) {
      auto id = ready.front();
      ready.pop_front();
      if (admit(id)) execute(id);
    }
    pumping = false;
  }

  const event_ptr& event_of(uint64_t id, const attempt& a) const {
    if (a.is_batch) return events.at(attempts.at(a.members.front()).seq).ev;
    return a.redrive ? redrives.at(id).ev : events.at(a.seq).ev;
  }

  /// The attempt's executor, or null when its action type has none.
  action_executor* executor_of(const attempt& a) const {
    auto ex = cfg.executors.find(cfg.registry->config(a.observer).actions[a.action].type);
    return ex == cfg.executors.end() ? nullptr : ex->second.get();
  }

  /// The endpoint key of an attempt (its breaker's and limiter's), computed once.
  const std::string& endpoint_of(uint64_t id, attempt& a) {
    if (a.endpoint_known) return a.endpoint;
    a.endpoint_known = true;
    const auto& oc = cfg.registry->config(a.observer);
    attempt_request req;
    req.ev = event_of(id, a).get();
    req.observer = a.observer;
    req.action = a.action;
    req.observer_cfg = &oc;
    req.action_cfg = &oc.actions[a.action];
    auto* ex = executor_of(a);
    a.endpoint = ex != nullptr ? ex->endpoint(req) : req.action_cfg->type;
    return a.endpoint;
  }

  // --- adaptive concurrency ----------------------------------------------------

  /// The limiter of `ep`, created on first use. Beyond max_limit_endpoints the
  /// least recently used idle one is forgotten (a busy one never is: its
  /// releases and parked attempts need it).
  endpoint_limit& limiter(const std::string& ep, circuit_breaker::time_point t) {
    auto it = limits.find(ep);
    if (it == limits.end()) {
      if (limits.size() >= cfg.max_limit_endpoints) forget_idle_limiter();
      it = limits
               .emplace(
                   ep,
                   endpoint_limit{adaptive_limit{cfg.limits, cfg.max_concurrent_actions, t}, {}, t})
               .first;
    }
    it->second.last_used = t;
    return it->second;
  }

  void forget_idle_limiter() {
    auto victim = limits.end();
    for (auto it = limits.begin(); it != limits.end(); ++it) {
      const auto& el = it->second;
      if (el.lim.in_flight() != 0 || !el.parked.empty()) continue;
      if (victim == limits.end() || el.last_used < victim->second.last_used) victim = it;
    }
    if (victim == limits.end()) return;
    if (cfg.stats) cfg.stats->endpoint_limit_forget(victim->first);
    limits.erase(victim);
  }

  /// Takes a slot of the attempt's endpoint, or parks the attempt until that
  /// endpoint frees one (false). Only executors that opt in are limited.
  bool admit(uint64_t id) {
    if (!cfg.adaptive || cfg.dry_run) return true;
    auto it = attempts.find(id);
    if (it == attempts.end()) return true;
    auto& a = it->second;
    auto* ex = executor_of(a);
    if (ex == nullptr || !ex->adaptive()) return true;
    const auto t = now();
    auto& el = limiter(endpoint_of(id, a), t);
    auto ticket = el.lim.try_acquire(t);
    if (!ticket) {
      el.parked.push_back(id);
      return false;
    }
    a.limit_pending = true;
    a.limit_ticket = *ticket;
    a.limit_started = t;
    return true;
  }

  /// Ends the try's hold on its endpoint's limiter: the latency and outcome
  /// teach it, and as many parked attempts as it now has free slots go back
  /// to the front of the ready queue (they waited longest).
  /// True when the limiter took an overload answer as its own to handle
  /// (it could still back off): the breaker then does not count it.
  bool release_limit(attempt& a, const attempt_outcome& o) {
    a.limit_pending = false;
    auto it = limits.find(a.endpoint);
    if (it == limits.end()) return false;  // never: a limiter in use is not forgotten
    auto& el = it->second;
    const bool absorbed =
        o.overloaded && !a.rejected && el.lim.limit() > el.lim.settings().min_limit;
    const auto t = now();
    const auto outcome = a.rejected           ? limit_outcome::other_failure
                         : o.overloaded       ? limit_outcome::overloaded
                         : (o.ok || o.served) ? limit_outcome::ok
                                              : limit_outcome::other_failure;
    el.lim.release(t, a.limit_ticket, t - a.limit_started, outcome);
    el.last_used = t;
    const uint32_t limit = el.lim.limit();
    const uint32_t in_flight = el.lim.in_flight();
    const size_t n = std::min<size_t>(limit > in_flight ? limit - in_flight : 0, el.parked.size());
    for (size_t i = n; i-- > 0;) ready.push_front(el.parked[i]);
    el.parked.erase(el.parked.begin(), el.parked.begin() + static_cast<std::ptrdiff_t>(n));
    publish_limit(a.endpoint, el, t);
    return absorbed;
  }

  /// Exports an endpoint's limiter: when its limit changed, when it went
  /// idle, and otherwise at most once a second (a gauge per release would
  /// cost more than the release).
  void publish_limit(const std::string& ep, endpoint_limit& el, circuit_breaker::time_point t) {
    if (!cfg.stats) return;
    const auto snap = el.lim.snapshot();
    const bool changed =
        snap.limit != el.published_limit || (snap.in_flight == 0 && el.published_in_flight != 0);
    if (!changed && t - el.published < std::chrono::seconds(1)) return;
    if (snap.limit != el.published_limit)
      spdlog::debug(
          "adaptive concurrency: {} limit {} -> {} (in flight {}, baseline {} us, recent {} us{})",
          ep, el.published_limit, snap.limit, snap.in_flight,
          std::chrono::duration_cast<std::chrono::microseconds>(snap.baseline_rtt).count(),
          std::chrono::duration_cast<std::chrono::microseconds>(snap.recent_rtt).count(),
          snap.probing ? ", probing" : "");
    el.published = t;
    el.published_limit = snap.limit;
    el.published_in_flight = snap.in_flight;
    cfg.stats->endpoint_limit(ep, snap.limit, snap.in_flight,
                              std::chrono::duration<double>(snap.baseline_rtt).count(),
                              std::chrono::duration<double>(snap.recent_rtt).count());
  }

  // --- DLQ redrive ---
  void redrive(const event_ptr& ev, uint32_t observer, uint32_t action,
               caf::typed_response_promise<bool, uint32_t, std::string> promise) {
    auto id = next_attempt++;
    attempt a;
    a.observer = observer;
    a.action = action;
    a.redrive = true;
    attempts.emplace(id, std::move(a));
    redrives.emplace(id, redrive_entry{ev, std::move(promise)});
    ready.push_back(id);
    pump();
  }

  void finish_redrive(uint64_t id, bool ok) {
    auto& a = attempts.at(id);
    auto it = redrives.find(id);
    if (cfg.trace)
      cfg.trace->attempt(it->second.ev->id, a.observer, a.action, a.tries,
                         ok ? "redriven" : "redrive-failed", a.last_error);
    it->second.promise.deliver(ok, a.tries, ok ? std::string{} : a.last_error);
    redrives.erase(it);
    attempts.erase(id);
    pump();
  }

  void execute(uint64_t id) {
    auto& a = attempts.at(id);
    if (a.is_batch && a.members.empty()) {
      attempts.erase(id);  // every member was rendered out and dead-lettered
      return;
    }
    const auto& ev = event_of(id, a);
    const auto& oc = cfg.registry->config(a.observer);
    const auto& ac = oc.actions[a.action];
    ++a.tries;
    if (a.tries == 1) a.first_try_ms = unix_ms();
    a.try_started = std::chrono::steady_clock::now();
    ++running;
    if (cfg.dry_run) {
      spdlog::info("dry-run: would run {} action {} of observer '{}' for event {} ({} {} {})",
                   ac.type, a.action, oc.name, ev->id, ev->event_type, ev->entity_type,
                   ev->entity_id);
      return on_outcome(id, attempt_outcome::success());
    }
    auto ex = cfg.executors.find(ac.type);
    if (ex == cfg.executors.end())
      return on_outcome(
          id, attempt_outcome::failure("action type '" + ac.type + "' has no executor", false));
    attempt_request req;
    req.ev = ev.get();
    req.observer = a.observer;
    req.action = a.action;
    req.observer_cfg = &oc;
    req.action_cfg = &ac;
    if (!a.is_batch) req.idempotency_key = idempotency_key(ev->id, oc.name, a.action);
    req.attempt = a.tries;
    if (cfg.enable_concurrent)
      req.timeout_cap = std::chrono::milliseconds(cfg.concurrent_timeout_ms);
    a.rejected = false;
    if (breakers->enabled()) {
      // Ask the endpoint's breaker first: while it is open the attempt fails
      // fast without touching the endpoint, frees its slot at once and is
      // retried no earlier than the next probe.
      endpoint_of(id, a);
      const auto t = now();
      const auto before = breakers->state(a.endpoint, t);
      auto d = breakers->allow(a.endpoint, t);
      breaker_changed(a.endpoint, before);
      if (!d.allowed) {
        a.rejected = true;
        auto o = attempt_outcome::failure("circuit open for " + a.endpoint, true);
        if (d.retry_at > t)
          o.retry_after = std::chrono::ceil<std::chrono::milliseconds>(d.retry_at - t);
        return on_outcome(id, std::move(o));
      }
      a.ticket = d.t;
      a.breaker_pending = true;
    }
    // Asynchronous completions arrive on the executor's thread: only post.
    action_pool_actor handle{self};
    attempt_callback cb = [handle, box = inbox, id](attempt_outcome o) {
      if (box->post(id, std::move(o))) caf::anon_send(handle, done_atom::value);
    };
    auto sync = a.is_batch ? start_batch(id, a, *ex->second, std::move(cb))
                           : ex->second->start(req, std::move(cb));
    if (sync) on_outcome(id, std::move(*sync));
  }

  /// Handles every posted outcome, then starts what the freed slots allow.
  void drain_completions() {
    auto done = inbox->take();
    pumping = true;  // one pump() below instead of one per outcome
    for (auto& [id, o] : done) on_outcome(id, std::move(o));
    pumping = false;
    pump();
  }

  void on_outcome(uint64_t id, attempt_outcome o) {
    --running;
    auto it = attempts.find(id);
    if (it == attempts.end()) return;
    auto& a = it->second;
    const bool absorbed = a.limit_pending && release_limit(a, o);
    const auto& oc = cfg.registry->config(a.observer);
    if (a.breaker_pending) {
      // Retryable failures are the endpoint's; final ones (4xx, render
      // errors) say nothing about its health. An overload answer (429, 503,
      // a timeout) while adaptive concurrency can still back off is the
      // limiter's to handle: a shedding endpoint gets fewer calls, not a
      // breaker open for timeout_ms. At min_limit it counts as a failure.
      a.breaker_pending = false;
      const auto r = o.ok                       ? call_result::success
                     : o.retryable && !absorbed ? call_result::failure
                                                : call_result::neutral;
      const auto t = now();
      const auto before = breakers->state(a.endpoint, t);
      breakers->record(a.endpoint, t, a.ticket, r);
      breaker_changed(a.endpoint, before);
    }
    if (a.rejected) {
      if (cfg.stats) cfg.stats->breaker_rejected(a.endpoint);
    } else if (cfg.stats && !cfg.dry_run) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - a.try_started).count();
      // A batch's try is an attempt of each of its events.
      for (size_t i = 0, n = a.is_batch ? a.members.size() : 1; i < n; ++i)
        cfg.stats->action_attempt(a.observer, a.action, o.ok, secs);
    }
    if (cfg.audit && !a.redrive && !cfg.dry_run) audit_outcome(a, o);  // audit trail
    if (a.is_batch) return batch_outcome(id, std::move(o));
    if (a.redrive && (o.ok || !o.retryable || a.tries >= oc.retry.max_attempts)) {
      if (!o.ok) a.last_error = o.error;
      return finish_redrive(id, o.ok);
    }
    if (o.ok) {
      if (cfg.trace)
        cfg.trace->attempt(events.at(a.seq).ev->id, a.observer, a.action, a.tries, "succeeded", "");
      attempt_done(id);
      return pump();
    }
    a.last_error = o.error;
    const auto& ev = event_of(id, a);
    if (o.retryable && a.tries < oc.retry.max_attempts) {
      std::uniform_real_distribution<double> u(0.0, 1.0);
      auto delay = backoff_delay(oc.retry, a.tries, u(rng));
      if (o.retry_after)
        delay = std::max(delay, std::min(*o.retry_after, std::chrono::milliseconds(3600 * 1000)));
      spdlog::debug("observer '{}' event {} action {}: attempt {} failed ({}), retry in {} ms",
                    oc.name, ev->id, a.action, a.tries, o.error, delay.count());
      if (cfg.trace) cfg.trace->attempt(ev->id, a.observer, a.action, a.tries, "retrying", o.error);
      self->delayed_send(self, delay, retry_atom::value, id);
      return pump();
    }
    if (!leading()) {
      // No DLQ row from a node that may have been replaced: the event stays
      // unfinished for the next leader. Should the lease still be renewed,
      // the action gets one more attempt (same idempotency key).
      self->delayed_send(self, std::chrono::milliseconds(50), retry_atom::value, id);
      return pump();
    }
    // Exhausted or not retryable: a durable DLQ row first, then the attempt is done.
    bury(id, o.error, a.tries, a.first_try_ms);
    pump();
  }

  void attempt_done(uint64_t id) {
    auto it = attempts.find(id);
    if (it == attempts.end()) return;
    auto lane_key = it->second.lane;
    auto seq = it->second.seq;
    auto observer = it->second.observer;
    attempts.erase(it);
    auto& lane = lanes.at(lane_key);
    const auto n = static_cast<uint32_t>(cfg.registry->config(observer).actions.size());
    if (!cfg.enable_concurrent && lane.next_action < n) {
      make_attempt(seq, observer, lane.next_action++, lane_key);
      return;
    }
    if (--lane.open > 0) return;
    // This observer is done with the lane's head event.
    auto& ee = events.at(seq);
    if (--ee.open_lanes == 0) {
      if (cfg.stats)
        cfg.stats->event_finished(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - ee.ev->read_at)
                .count());
      events.erase(seq);
      ++finished_events;
      if (finished.empty()) self->send(self, flush_atom::value);
      finished.push_back(seq);
    }
    lane.queue.pop_front();
    if (lane.queue.empty())
      lanes.erase(lane_key);
    else
      start_lane(lane_key, observer);
  }
};

action_pool_actor::behavior_type action_pool(
    action_pool_actor::stateful_pointer<action_pool_state> self, action_pool_options cfg,
    finish_sink checkpointer, dlq_actor dlq) {
  auto& st = self->state;
  st.self = self;
  st.cfg = std::move(cfg);
  st.checkpointer = std::move(checkpointer);
  st.dlq = std::move(dlq);
  st.breakers = std::make_unique<breaker_registry>(st.cfg.breakers, st.cfg.max_breaker_endpoints);
  if (st.cfg.stats)
    st.breakers->on_forget(
        [stats = st.cfg.stats](const std::string& ep) { stats->breaker_forget(ep); });
  return {
      [self](run_atom, const event_ptr& ev, const std::vector<uint32_t>& obs) {
        self->state.run(ev, obs);
      },
      [self](done_atom) { self->state.drain_completions(); },
      [self](retry_atom, uint64_t id) { self->state.retry(id); },
      [self](wake_atom) {
        self->state.lease_wait = false;
        self->state.pump();
      },
      [self](flush_atom) {
        auto& st = self->state;
        st.flush_due_batches();
        if (!st.finished.empty())
          self->send(st.checkpointer, finish_atom::value, std::exchange(st.finished, {}));
        st.send_enqueue();  // job queue
      },
      [self](status_atom) {
        return std::make_tuple(static_cast<uint64_t>(self->state.running),
                               self->state.finished_events);
      },
      [self](status_atom, breakers_atom) {
        return self->state.breakers->status(self->state.now());
      },
      [self](redrive_atom, const event_ptr& ev, uint32_t observer,
             uint32_t action) -> caf::typed_response_promise<bool, uint32_t, std::string> {
        auto rp = self->make_response_promise<bool, uint32_t, std::string>();
        const auto& reg = *self->state.cfg.registry;
        if (observer >= reg.size() || action >= reg.config(observer).actions.size()) {
          rp.deliver(false, uint32_t{0}, std::string("observer or action index out of range"));
          return rp;
        }
        self->state.redrive(ev, observer, action, rp);
        return rp;
      },
  };
}

action_pool_actor spawn_action_pool(caf::actor_system& sys, action_pool_options cfg,
                                    finish_sink checkpointer, dlq_actor dlq) {
  return sys.spawn(action_pool, cfg, checkpointer, dlq);
}

}  // namespace fraiseql
