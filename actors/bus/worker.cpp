#include "actors/bus/worker.hpp"

#include "runtime/core/bus.hpp"
#include "runtime/core/clock.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/core/lease_clock.hpp"
#include "runtime/core/partitions.hpp"
#include "runtime/io/nats/connection.hpp"
#include "runtime/io/nats/consumer.hpp"
#include "runtime/io/nats/jetstream.hpp"
#include "runtime/io/nats/kv.hpp"
#include "runtime/ops/metrics.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>
#include <caf/all.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <unordered_map>

namespace fraiseql {
using message_ptr = std::shared_ptr<jetstream_message>;
using message_batch = std::vector<message_ptr>;
}  // namespace fraiseql

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fraiseql::message_batch)

namespace fraiseql {

namespace {

using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using own_atom = caf::atom_constant<caf::atom("own")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using released_atom = caf::atom_constant<caf::atom("released")>;
using lost_atom = caf::atom_constant<caf::atom("lost")>;
using progress_atom = caf::atom_constant<caf::atom("progress")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;

/// Keeps the member key and the partition leases (detached: KV calls block).
using owner_actor =
    caf::typed_actor<caf::reacts_to<tick_atom>, caf::reacts_to<released_atom, uint32_t>,
                     caf::replies_to<stop_atom>::with<bool>>;

using core_actor =
    worker_actor::extend<caf::reacts_to<deliver_atom, uint32_t, message_batch>,
                         caf::reacts_to<own_atom, uint32_t>, caf::reacts_to<release_atom, uint32_t>,
                         caf::reacts_to<lost_atom, uint32_t>, caf::reacts_to<progress_atom>,
                         caf::reacts_to<drain_atom>>;

/// Free slots of the worker's window, shared by its fetchers.
struct slots {
  std::atomic<int64_t> free;
  explicit slots(int64_t n) : free(n) {}
  /// Up to `want` slots, 0 when none is free.
  int64_t take(int64_t want) {
    int64_t cur = free.load();
    while (cur > 0) {
      const int64_t got = std::min(cur, want);
      if (free.compare_exchange_weak(cur, cur - got)) return got;
    }
    return 0;
  }
  void give(int64_t n) { free.fetch_add(n); }
};

consumer_config consumer_of(const nats_config& n, uint32_t p) {
  consumer_config c;
  c.stream = n.stream;
  c.durable = partition_consumer(n.consumer, p);
  c.filter_subject = partition_filter(n.subject_prefix, p);
  c.ack_wait = std::chrono::milliseconds(n.ack_wait_ms);
  // One delivery more than max_deliver: that one goes to the DLQ instead of
  // running again, so the server never drops a message on its own.
  c.max_deliver = static_cast<int64_t>(n.max_deliver) + 1;
  c.max_ack_pending = n.max_ack_pending;
  return c;
}

stream_config stream_of(const nats_config& n) {
  stream_config s;
  s.name = n.stream;
  s.subjects = {stream_subjects(n.subject_prefix)};
  s.replicas = static_cast<int>(n.replicas);
  s.duplicate_window = std::chrono::seconds(n.duplicate_window_secs);
  s.max_age = std::chrono::seconds(n.max_age_secs);
  return s;
}

// --- fetcher --------------------------------------------------------------------

/// One partition's fetch loop: a blocking actor on its own thread (fetch
/// blocks up to its timeout), which looks at its mailbox between fetches
/// (a stop request ends it).
///
/// Slots. Waiting for a partition's next message must not hold any of the
/// worker's slots (an idle partition would starve busy ones), so the wait is
/// a one-message pull request that reserves nothing: the message it brings
/// takes a slot when it arrives, and may be one over the window (at most one
/// per owned partition; held messages get in-progress acks, so none
/// expires). What follows it is a no-wait pull for at most the free slots.
/// While the window is full, the loop does not pull at all.
void fetcher(caf::blocking_actor* self, std::shared_ptr<nats_connection> conn, nats_config n,
             uint32_t partition, std::shared_ptr<slots> free, core_actor core,
             std::shared_ptr<metrics> stats) {
  std::unique_ptr<pull_consumer> consumer;
  bool stopped = false;
  bool warned = false;
  auto pause = std::chrono::milliseconds(0);
  while (!stopped) {
    // Control first: a stop request is answered once no fetch is running, so
    // everything fetched before it is already in the worker's mailbox.
    self->receive(
        [&](stop_atom) {
          stopped = true;
          return true;
        },
        [&](const caf::exit_msg&) { stopped = true; }, caf::after(pause) >> [] {});
    if (stopped) break;
    pause = std::chrono::milliseconds(0);
    if (free->free.load() <= 0) {
      pause = std::chrono::milliseconds(2);  // every slot busy: look again shortly
      continue;
    }
    try {
      if (!consumer) consumer = std::make_unique<pull_consumer>(conn, consumer_of(n, partition));
      auto got = consumer->fetch(1, std::chrono::milliseconds(500));
      if (warned) spdlog::info("worker: partition {}: fetching again", partition);
      warned = false;
      if (got.empty()) continue;
      free->give(-1);
      if (n.fetch_batch > 1) {
        const int64_t k = free->take(static_cast<int64_t>(n.fetch_batch) - 1);
        if (k > 0) {
          std::vector<jetstream_message> more;
          try {
            more = consumer->fetch_available(static_cast<int>(k));
          } catch (...) {
            free->give(k + 1);  // and the slot of the message already fetched,
            throw;              // which is dropped unacked: it is redelivered
          }
          free->give(k - static_cast<int64_t>(more.size()));
          for (auto& m : more) got.push_back(std::move(m));
        }
      }
      message_batch batch;
      batch.reserve(got.size());
      uint64_t redelivered = 0;
      for (auto& m : got) {
        if (m.num_delivered() > 1) ++redelivered;
        batch.push_back(std::make_shared<jetstream_message>(std::move(m)));
      }
      if (stats) stats->nats_fetched(batch.size(), redelivered);
      self->send(core, deliver_atom::value, partition, std::move(batch));
    } catch (const std::exception& e) {
      if (!warned)
        spdlog::warn("worker: partition {}: fetch failed, retrying: {}", partition, e.what());
      warned = true;
      consumer.reset();
      pause = std::chrono::milliseconds(500);
    }
  }
}

// --- owner ----------------------------------------------------------------------

struct owned_partition {
  uint64_t rev = 0;
  bool ready = false;
  std::chrono::steady_clock::time_point ready_at;
};

struct owner_state {
  static inline const char* name = "nats_owner";
  std::unique_ptr<kv_bucket> kv;
  bool stream_ensured = false;
  std::map<uint32_t, owned_partition> owned;
  std::set<uint32_t> releasing;
  std::optional<uint64_t> member_rev;
  bool stopped = false;
  bool warned = false;
  std::vector<std::string> last_members;
  /// The last round left the assignment unsettled: a partition this worker
  /// should own is still held by another, or one it should give up is not
  /// handed over yet. Rounds then come every 250 ms instead of lease / 3, so
  /// a hand-over takes a fraction of a second, not two rounds.
  bool unsettled = false;
};

/// The key's revision when it names `name` (the key is ours), else nullopt.
std::optional<uint64_t> own_revision(kv_bucket& kv, const std::string& key,
                                     const std::string& name) {
  auto cur = kv.get(key);
  if (cur && cur->first == name) return cur->second;
  return std::nullopt;
}

owner_actor::behavior_type owner(owner_actor::stateful_pointer<owner_state> self,
                                 worker_options cfg, core_actor core) {
  const auto lease = std::chrono::milliseconds(cfg.nats.partition_lease_ms);
  const auto round_every =
      std::max<std::chrono::milliseconds>(lease / 3, std::chrono::milliseconds(100));
  const auto ack_wait = std::chrono::milliseconds(cfg.nats.ack_wait_ms);
  const std::string member_key = "member." + cfg.name;
  auto owner_key = [](uint32_t p) { return "owner." + std::to_string(p); };
  auto round = [=]() {
    auto& st = self->state;
    if (!st.stream_ensured) {
      // Create it when no bridge has yet; never change a bridge's (or an
      // operator's) settings of an existing one.
      if (!get_stream_info(*cfg.conn, cfg.nats.stream))
        ensure_stream(*cfg.conn, stream_of(cfg.nats));
      st.stream_ensured = true;
    }
    if (!st.kv)
      st.kv = std::make_unique<kv_bucket>(cfg.conn, cfg.nats.stream + "_owners", lease,
                                          static_cast<int>(cfg.nats.replicas));
    const auto started = std::chrono::steady_clock::now();
    st.kv->put(member_key, cfg.name);
    std::vector<std::string> members;
    for (const auto& k : st.kv->keys("member."))
      if (k.rfind("member.", 0) == 0) members.push_back(k.substr(7));
    std::sort(members.begin(), members.end());
    if (members != st.last_members) {
      spdlog::info("worker {}: {} workers: {}", cfg.name, members.size(), [&] {
        std::string s;
        for (const auto& m : members) s += (s.empty() ? "" : ", ") + m;
        return s;
      }());
      st.last_members = members;
    }
    // Renew what we hold; a key no longer ours is lost.
    for (auto it = st.owned.begin(); it != st.owned.end();) {
      auto rev = st.kv->update(owner_key(it->first), cfg.name, it->second.rev);
      // A write whose answer was lost (a timeout in a leader election) left
      // us with a stale revision: the key still naming us is still ours.
      if (!rev) rev = own_revision(*st.kv, owner_key(it->first), cfg.name);
      if (!rev) {
        spdlog::error("worker {}: lost partition {} (its lease was taken or expired)", cfg.name,
                      it->first);
        self->send(core, lost_atom::value, it->first);
        if (cfg.stats) cfg.stats->nats_consumer_gone(it->first);
        st.releasing.erase(it->first);
        it = st.owned.erase(it);
        continue;
      }
      it->second.rev = *rev;
      ++it;
    }
    cfg.ownership->renewed(started, lease);
    const auto mine = partitions_of(members, cfg.name, cfg.nats.partitions);
    for (uint32_t p : mine) {
      if (st.owned.count(p) > 0) continue;
      auto rev = st.kv->create(owner_key(p), cfg.name);
      if (!rev) rev = own_revision(*st.kv, owner_key(p), cfg.name);  // see the renewal
      if (!rev) continue;  // still held by its previous owner: next round
      consumer_info info;
      ensure_consumer(*cfg.conn, consumer_of(cfg.nats, p), &info);
      owned_partition o;
      o.rev = *rev;
      o.ready_at = started;
      if (info.num_ack_pending > 0) {
        // The previous owner left deliveries unacked: they are redelivered
        // (first, in stream order) once their ack wait has passed.
        o.ready_at = std::chrono::steady_clock::now() + ack_wait + std::chrono::seconds(1);
        spdlog::info(
            "worker {}: took partition {}; {} deliveries of its previous owner outstanding, "
            "fetching after their ack wait ({} ms)",
            cfg.name, p, info.num_ack_pending, ack_wait.count());
      } else {
        spdlog::info("worker {}: took partition {}", cfg.name, p);
      }
      st.owned.emplace(p, o);
    }
    const auto now = std::chrono::steady_clock::now();
    for (auto& [p, o] : st.owned) {
      if (!o.ready && now >= o.ready_at) {
        o.ready = true;
        self->send(core, own_atom::value, p);
      }
      const bool should = std::binary_search(mine.begin(), mine.end(), p);
      if (o.ready && !should && st.releasing.insert(p).second) {
        spdlog::info("worker {}: handing partition {} over", cfg.name, p);
        self->send(core, release_atom::value, p);
      }
    }
    st.unsettled = false;
    for (uint32_t p : mine)
      if (st.owned.count(p) == 0 || !st.owned.at(p).ready) st.unsettled = true;
    for (const auto& [p, o] : st.owned)
      if (!std::binary_search(mine.begin(), mine.end(), p)) st.unsettled = true;
    if (cfg.report) {
      worker_report::snapshot snap;
      snap.members = members;
      for (const auto& [p, o] : st.owned) snap.owned.push_back(p);
      snap.round_ok = true;
      cfg.report->set(std::move(snap));
    }
    if (cfg.stats) {
      cfg.stats->nats_partitions_owned(st.owned.size());
      for (const auto& [p, o] : st.owned)
        if (auto ci = get_consumer_info(*cfg.conn, cfg.nats.stream,
                                        partition_consumer(cfg.nats.consumer, p)))
          cfg.stats->nats_consumer(p, ci->num_pending,
                                   static_cast<uint64_t>(std::max<int64_t>(0, ci->num_ack_pending)),
                                   cfg.nats.max_ack_pending);
    }
  };
  self->send(self, tick_atom::value);
  return {
      [=](tick_atom) {
        auto& st = self->state;
        if (st.stopped) return;
        try {
          round();
          if (st.warned) spdlog::info("worker {}: ownership round succeeded again", cfg.name);
          st.warned = false;
        } catch (const std::exception& e) {
          if (!st.warned)
            spdlog::warn("worker {}: ownership round failed, retrying: {}", cfg.name, e.what());
          if (cfg.report) {
            auto snap = cfg.report->get();
            snap.round_ok = false;
            cfg.report->set(std::move(snap));
          }
          st.warned = true;
        }
        const auto quick = std::chrono::milliseconds(250);
        self->delayed_send(self, st.unsettled ? std::min(round_every, quick) : round_every,
                           tick_atom::value);
      },
      [=](released_atom, uint32_t p) {
        auto& st = self->state;
        st.releasing.erase(p);
        if (st.owned.erase(p) == 0) return;
        if (cfg.stats) cfg.stats->nats_consumer_gone(p);
        try {
          // The acks of the partition's last messages were sent without
          // waiting: a round trip makes sure the server has them before the
          // next owner looks at the consumer (else it would wait out ack_wait).
          cfg.conn->flush(std::chrono::seconds(2));
          if (st.kv) st.kv->remove(owner_key(p));
          spdlog::info("worker {}: partition {} handed over", cfg.name, p);
        } catch (const std::exception& e) {
          spdlog::warn("worker {}: partition {}: releasing its lease failed ({}); it expires",
                       cfg.name, p, e.what());
        }
        if (cfg.stats) cfg.stats->nats_partitions_owned(st.owned.size());
      },
      [=](stop_atom) {
        auto& st = self->state;
        st.stopped = true;
        bool ok = true;
        if (st.kv) {
          try {
            cfg.conn->flush(std::chrono::seconds(2));  // our last acks first (see released)
            for (const auto& [p, o] : st.owned) st.kv->remove(owner_key(p));
            st.kv->remove(member_key);
          } catch (const std::exception& e) {
            spdlog::warn("worker {}: leases not released ({}); they expire", cfg.name, e.what());
            ok = false;
          }
        }
        st.owned.clear();
        return ok;
      },
  };
}

/// The DLQ's event id (a uuid) of a message that is not an event: the uuid
/// after the Msg-Id's last ':' when it is one (a bridge's <source>:<event id>),
/// else one derived from the stream and sequence (stable across redeliveries).
std::string raw_message_id(const std::string& msg_id, const std::string& stream, uint64_t seq) {
  auto is_uuid = [](std::string_view v) {
    if (v.size() != 36) return false;
    for (size_t i = 0; i < v.size(); ++i) {
      const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash ? v[i] != '-' : std::isxdigit(static_cast<unsigned char>(v[i])) == 0) return false;
    }
    return true;
  };
  const auto colon = msg_id.rfind(':');
  const std::string tail = colon == std::string::npos ? msg_id : msg_id.substr(colon + 1);
  if (is_uuid(tail)) return tail;
  uint64_t h[2] = {14695981039346656037ull, 1099511628211ull * 31};
  const std::string key = stream + "\x1f" + std::to_string(seq);
  for (int k = 0; k < 2; ++k)
    for (unsigned char c : key) {
      h[k] ^= c + static_cast<unsigned>(k);
      h[k] *= 1099511628211ull;
    }
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-8%03x-8%03x-%012llx", static_cast<unsigned>(h[0] >> 32),
                static_cast<unsigned>((h[0] >> 16) & 0xffff), static_cast<unsigned>(h[0] & 0xfff),
                static_cast<unsigned>((h[1] >> 48) & 0xfff),
                static_cast<unsigned long long>(h[1] & 0xffffffffffffull));
  return buf;
}

// --- core -----------------------------------------------------------------------

struct held_message {
  message_ptr msg;
  uint32_t partition = 0;
  std::chrono::steady_clock::time_point progress;  // delivery or last in-progress
};

struct core_state {
  static inline const char* name = "nats_worker";
  using pointer = core_actor::stateful_pointer<core_state>;
  pointer self = nullptr;
  worker_options cfg;
  router_actor router;
  owner_actor owner;
  std::shared_ptr<slots> free;
  std::map<uint32_t, caf::actor> fetchers;  // blocking fetch loops
  std::set<uint32_t> releasing;             // fetcher stopped, waiting for held messages
  /// Taken over by another worker: a batch its fetcher sent before it
  /// stopped is dropped unacked (redelivered to the new owner), never run.
  std::set<uint32_t> lost_partitions;
  std::unordered_map<uint64_t, held_message> held;
  std::unordered_map<uint32_t, uint64_t> held_by_partition;
  uint64_t next_seq = 1;
  uint64_t acked = 0;
  std::vector<event_ptr> early;  // fetched before the router was wired (never: owner waits)
  caf::response_promise stop_promise;
  bool stopping = false;
  std::chrono::steady_clock::time_point stop_deadline;

  void deliver(uint32_t p, message_batch& batch) {
    if (lost_partitions.count(p) > 0) {
      spdlog::warn(
          "worker {}: dropping {} messages of partition {} fetched before it was taken "
          "over (the new owner gets them)",
          cfg.name, batch.size(), p);
      free->give(static_cast<int64_t>(batch.size()));
      return;
    }
    event_batch events;
    for (auto& m : batch) {
      const auto seq = next_seq++;
      const auto delivered = m->num_delivered();
      if (delivered > cfg.nats.max_deliver) {
        bury_raw(m, seq, p,
                 "delivered " + std::to_string(delivered) +
                     " times without finishing (max_deliver " +
                     std::to_string(cfg.nats.max_deliver) +
                     "): a worker died or stalled on it each time",
                 "max_deliver");
        continue;
      }
      event_ptr ev;
      try {
        ev = event_from_envelope(std::string(m->data()), seq);
      } catch (const std::exception& e) {
        bury_raw(m, seq, p, std::string("unparseable message: ") + e.what(), "unparseable");
        continue;
      }
      held.emplace(seq, held_message{m, p, std::chrono::steady_clock::now()});
      ++held_by_partition[p];
      events.push_back(std::move(ev));
    }
    if (!events.empty()) self->send(router, route_atom::value, std::move(events));
  }

  /// Dead-letters a message as it came (its payload and where it sat), then
  /// terminates it.
  void bury_raw(const message_ptr& m, uint64_t seq, uint32_t p, std::string why, const char* kind) {
    const auto& meta = m->metadata();
    auto ev = std::make_shared<event>();
    ev->seq = seq;
    ev->id = raw_message_id(m->msg_id(), meta.stream, meta.stream_seq);
    ev->event_type = "NATS";
    ev->entity_type = std::string(m->subject());
    ev->entity_id = std::to_string(meta.stream_seq);
    boost::json::object env;
    env["id"] = ev->id;
    env["msg_id"] = m->msg_id();
    env["subject"] = std::string(m->subject());
    env["stream"] = meta.stream;
    env["stream_seq"] = meta.stream_seq;
    env["num_delivered"] = meta.num_delivered;
    boost::json::error_code ec;
    auto parsed = boost::json::parse(m->data(), ec);
    if (!ec)
      env["event"] = std::move(parsed);
    else
      env["raw"] = std::string(m->data());
    ev->envelope = std::move(env);
    ev->envelope_json = boost::json::serialize(ev->envelope);
    spdlog::error("worker {}: message {} of partition {} dead-lettered: {}", cfg.name, ev->id, p,
                  why);
    dlq_entry e;
    e.ev = ev;
    e.observer_name = "(worker)";
    e.action_type = kind;
    e.idempotency_key = ev->id + ":(worker):" + kind;
    e.last_error = std::move(why);
    e.attempts = static_cast<uint32_t>(meta.num_delivered);
    e.first_attempt_ms = e.last_attempt_ms = unix_ms();
    held.emplace(seq, held_message{m, p, std::chrono::steady_clock::now()});
    ++held_by_partition[p];
    self->request(cfg.dlq, caf::infinite, bury_atom::value, std::move(e))
        .then([this, seq](int64_t) { settle(seq, true); },
              [this, seq](const caf::error& err) {
                // Not durable: leave it unacked; it is delivered again.
                spdlog::error("worker {}: DLQ write failed, message left for redelivery: {}",
                              cfg.name, caf::to_string(err));
                forget(seq);
              });
  }

  /// Acks (or terminates) a finished message and frees its slot.
  void settle(uint64_t seq, bool terminate) {
    auto it = held.find(seq);
    if (it == held.end()) return;
    try {
      if (terminate)
        it->second.msg->term();
      else
        it->second.msg->ack();
    } catch (const std::exception& e) {
      // Disconnected: the message comes back after its ack wait (at least once).
      spdlog::warn("worker {}: ack failed (the message will be redelivered): {}", cfg.name,
                   e.what());
    }
    if (cfg.stats) {
      if (terminate)
        cfg.stats->nats_terminated(1);
      else
        cfg.stats->nats_acked(1);
    }
    ++acked;
    forget_it(it);
  }

  void forget(uint64_t seq) {
    auto it = held.find(seq);
    if (it != held.end()) forget_it(it);
  }

  void forget_it(std::unordered_map<uint64_t, held_message>::iterator it) {
    const uint32_t p = it->second.partition;
    held.erase(it);
    free->give(1);
    if (--held_by_partition[p] == 0) {
      held_by_partition.erase(p);
      if (releasing.erase(p) > 0) self->send(owner, released_atom::value, p);
    }
    if (stopping && held.empty()) finish_stop(true);
  }

  void start_fetching(uint32_t p) {
    if (stopping || fetchers.count(p) > 0) return;
    auto f = self->system().spawn<caf::detached>(fetcher, cfg.conn, cfg.nats, p, free,
                                                 core_actor{self}, cfg.stats);
    fetchers.emplace(p, f);
  }

  /// Stops p's fetcher; `then` runs once it fetches no more (its last batch
  /// is in our mailbox before the answer).
  template <class F>
  void stop_fetching(uint32_t p, F then) {
    auto it = fetchers.find(p);
    if (it == fetchers.end()) return then();
    auto f = it->second;
    fetchers.erase(it);
    self->request(f, std::chrono::seconds(30), stop_atom::value)
        .then(
            [this, f, then](bool) {
              self->send_exit(f, caf::exit_reason::user_shutdown);
              then();
            },
            [this, f, then](const caf::error&) {
              self->send_exit(f, caf::exit_reason::user_shutdown);
              then();
            });
  }

  void release(uint32_t p) {
    stop_fetching(p, [this, p] {
      if (held_by_partition.count(p) == 0)
        self->send(owner, released_atom::value, p);
      else
        releasing.insert(p);
    });
  }

  void lost(uint32_t p) {
    if (held_by_partition.count(p) > 0) {
      spdlog::critical(
          "worker {}: partition {} was taken over while {} of its messages are held here; "
          "exiting rather than run them beside the new owner (they are redelivered to it)",
          cfg.name, p, held_by_partition[p]);
      spdlog::default_logger()->flush();
      std::_Exit(75);
    }
    lost_partitions.insert(p);
    stop_fetching(p, [this, p] { lost_partitions.erase(p); });
  }

  void progress() {
    const auto ack_wait = std::chrono::milliseconds(cfg.nats.ack_wait_ms);
    const auto now = std::chrono::steady_clock::now();
    for (auto& [seq, h] : held) {
      if (now - h.progress < ack_wait / 2) continue;
      try {
        h.msg->in_progress();
        h.progress = now;
      } catch (const std::exception&) {
        // Disconnected: tried again on the next tick.
      }
    }
    self->delayed_send(
        self, std::max<std::chrono::milliseconds>(ack_wait / 4, std::chrono::milliseconds(100)),
        progress_atom::value);
  }

  void begin_stop(std::chrono::milliseconds timeout) {
    stopping = true;
    stop_deadline = std::chrono::steady_clock::now() + timeout;
    auto ps = fetchers;
    for (auto& [p, f] : ps) stop_fetching(p, [] {});
    if (held.empty()) return finish_stop(true);
    self->delayed_send(self, std::chrono::milliseconds(50), drain_atom::value);
  }

  void check_drain() {
    if (!stopping || stop_promise.pending() == false) return;
    if (held.empty()) return finish_stop(true);
    if (std::chrono::steady_clock::now() >= stop_deadline) return finish_stop(false);
    self->delayed_send(self, std::chrono::milliseconds(50), drain_atom::value);
  }

  void finish_stop(bool drained) {
    if (!stop_promise.pending()) return;
    auto promise = stop_promise;
    stop_promise = caf::response_promise{};
    if (!drained)
      spdlog::warn("worker {}: {} messages still held at shutdown; they are redelivered", cfg.name,
                   held.size());
    // Leases go only once nothing of ours is in flight (or we gave up
    // waiting: then the successor waits out their ack wait, see num_ack_pending).
    self->request(owner, std::chrono::seconds(30), stop_atom::value)
        .then([promise, drained](bool) mutable { promise.deliver(drained); },
              [promise, drained](const caf::error&) mutable { promise.deliver(drained); });
  }
};

core_actor::behavior_type core(core_state::pointer self, worker_options cfg) {
  auto& st = self->state;
  st.self = self;
  st.free = std::make_shared<slots>(cfg.window);
  st.cfg = std::move(cfg);
  self->send(self, progress_atom::value);
  return {
      [self](router_actor r) {
        auto& st = self->state;
        st.router = std::move(r);
        st.owner = self->system().spawn<caf::detached>(owner, st.cfg, core_actor{self});
        self->link_to(st.owner);
      },
      [self](finish_atom, const std::vector<uint64_t>& seqs) {
        for (auto seq : seqs) self->state.settle(seq, false);
      },
      [self](deliver_atom, uint32_t p, message_batch& batch) { self->state.deliver(p, batch); },
      [self](own_atom, uint32_t p) { self->state.start_fetching(p); },
      [self](release_atom, uint32_t p) { self->state.release(p); },
      [self](lost_atom, uint32_t p) { self->state.lost(p); },
      [self](progress_atom) { self->state.progress(); },
      [self](drain_atom) { self->state.check_drain(); },
      [self](stop_atom, uint64_t timeout_ms) -> caf::result<bool> {
        auto& st = self->state;
        st.stop_promise = self->make_response_promise<bool>();
        auto promise = st.stop_promise;
        st.begin_stop(std::chrono::milliseconds(timeout_ms));
        return promise;
      },
      [self](status_atom) {
        return std::make_tuple(static_cast<uint64_t>(self->state.held.size()), self->state.acked);
      },
  };
}

}  // namespace

worker_actor spawn_worker(caf::actor_system& sys, worker_options cfg) {
  return sys.spawn(core, std::move(cfg));
}

}  // namespace fraiseql
