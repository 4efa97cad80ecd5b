#include "actors/history/audit.hpp"

#include "runtime/core/audit.hpp"
#include "runtime/core/es_bulk.hpp"
#include "runtime/io/net/es_client.hpp"
#include "runtime/io/pg/audit_store.hpp"
#include "runtime/ops/metrics.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <optional>
#include <random>

namespace fraiseql {

namespace {

using clock_type = std::chrono::steady_clock;

/// The same warning at most this often.
constexpr auto warn_every = std::chrono::seconds(60);

/// Documents waiting for Elasticsearch, at most this many bulk requests' worth.
constexpr size_t es_pending_requests = 4;

}  // namespace

struct audit_state {
  static inline const char* name = "audit";
  audit_options o;
  std::optional<audit_store> store;
  std::unique_ptr<es_client> es;
  /// Elasticsearch: documents taken from the queue, not yet indexed.
  std::vector<es_doc> pending;
  std::chrono::milliseconds es_delay{0};
  clock_type::time_point es_resume_at{};
  uint64_t dropped_seen = 0;
  clock_type::time_point warned_drop{}, warned_write{};
  std::mt19937_64 rng{std::random_device{}()};

  bool due(clock_type::time_point& last) {
    const auto now = clock_type::now();
    if (last != clock_type::time_point{} && now - last < warn_every) return false;
    last = now;
    return true;
  }

  void report_drops() {
    const uint64_t d = o.queue->dropped();
    if (d == dropped_seen) return;
    if (o.stats) o.stats->audit_dropped(d - dropped_seen);
    if (due(warned_drop))
      spdlog::warn(
          "audit: {} records dropped so far: the audit queue is full (the {} backend does not "
          "keep up); delivery is not affected ([audit] queue_size, batch_size)",
          d, o.backend);
    dropped_seen = d;
  }

  uint64_t round_postgres(clock_type::time_point deadline) {
    uint64_t written = 0;
    while (clock_type::now() < deadline) {
      auto b = o.queue->take(o.batch_size);
      if (b.empty()) break;
      try {
        store->write(b);
        written += b.size();
        if (o.stats) o.stats->audit_written(b.events.size(), b.attempts.size());
      } catch (const pg_unavailable& e) {
        o.queue->put_back(std::move(b));
        if (due(warned_write))
          spdlog::warn("audit: database unavailable, writes wait: {}", e.what());
        break;
      } catch (const std::exception& e) {
        // Not a connection problem: this batch would fail again. It is
        // dropped and counted rather than blocking the trail behind it.
        if (o.stats) o.stats->audit_failed(b.size());
        spdlog::error("audit: {} records not written (dropped): {}", b.size(), e.what());
        break;
      }
    }
    return written;
  }

  void backoff_es(const std::string& why) {
    std::uniform_real_distribution<double> u(0.5, 1.0);
    es_delay = es_delay.count() == 0 ? o.es_min_backoff : std::min(o.es_max_backoff, es_delay * 2);
    const auto d = std::chrono::milliseconds(static_cast<int64_t>(es_delay.count() * u(rng)));
    es_resume_at = clock_type::now() + d;
    if (due(warned_write))
      spdlog::warn("audit: Elasticsearch: {}; {} documents wait, next try in {} ms", why,
                   pending.size(), d.count());
  }

  uint64_t round_es(clock_type::time_point deadline, bool force) {
    if (!force && clock_type::now() < es_resume_at) return 0;
    const size_t room = static_cast<size_t>(o.es_bulk_max_docs) * es_pending_requests;
    if (pending.size() < room) {
      auto b = o.queue->take(room - pending.size());
      for (const auto& e : b.events) pending.push_back(es_event_doc(o.es_index, o.listener_id, e));
      for (const auto& a : b.attempts)
        pending.push_back(es_attempt_doc(o.es_index, o.listener_id, a));
    }
    uint64_t written = 0;
    while (!pending.empty() && clock_type::now() < deadline) {
      const size_t n = es_bulk_count(pending, 0, o.es_bulk_max_docs, o.es_bulk_max_bytes);
      const auto reply = es->bulk(es_bulk_body(pending, 0, n));
      if (reply.status == 0) {
        backoff_es("no answer (" + reply.error + ")");
        break;
      }
      if (reply.status == 429 || reply.status >= 500 || reply.status == 401 ||
          reply.status == 403 || reply.status == 404) {
        backoff_es("HTTP " + std::to_string(reply.status) + " " + reply.body.substr(0, 200));
        break;
      }
      if (reply.status >= 400) {
        // The request itself is refused (malformed, too large): these
        // documents would be refused again.
        if (o.stats) o.stats->audit_failed(n);
        spdlog::error("audit: Elasticsearch refused a _bulk request of {} documents (HTTP {}): {}",
                      n, reply.status, reply.body.substr(0, 300));
        pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n));
        continue;
      }
      const auto v = es_bulk_parse(reply.body, n);
      uint64_t events = 0, attempts = 0;
      for (auto i : v.done) (pending[i].attempt ? attempts : events) += 1;
      if (o.stats) o.stats->audit_written(events, attempts);
      written += v.done.size();
      for (const auto& [i, why] : v.failed)
        spdlog::error("audit: Elasticsearch refused document {} in {}: {}", pending[i].id,
                      pending[i].index, why);
      if (o.stats && !v.failed.empty()) o.stats->audit_failed(v.failed.size());
      std::vector<es_doc> next;
      next.reserve(v.retry.size() + pending.size() - n);
      for (auto i : v.retry) {
        pending[i].retries += 1;
        next.push_back(std::move(pending[i]));
      }
      for (size_t i = n; i < pending.size(); ++i) next.push_back(std::move(pending[i]));
      pending = std::move(next);
      if (!v.retry.empty()) {
        backoff_es(std::to_string(v.retry.size()) + " of " + std::to_string(n) +
                   " documents answered 429/5xx (retried)");
        break;
      }
      es_delay = std::chrono::milliseconds(0);
    }
    return written;
  }

  uint64_t round(std::chrono::milliseconds budget, bool force = false) {
    const auto deadline = clock_type::now() + budget;
    uint64_t written = 0;
    try {
      written = store ? round_postgres(deadline) : round_es(deadline, force);
    } catch (const std::exception& e) {
      spdlog::error("audit: write round failed: {}", e.what());
    }
    report_drops();
    if (o.stats) o.stats->audit_queue(o.queue->size() + pending.size());
    return written;
  }

  void expire() {
    if (!store) return;
    try {
      store->ensure_partitions(-1, 3);
      uint64_t dropped = 0;
      for (const auto& d : store->drop_expired(o.retention_days)) {
        if (d.dropped) {
          ++dropped;
          spdlog::info("audit: retention dropped the partitions of {}", d.day);
        } else {
          spdlog::warn(
              "audit: the partitions of {} are past the retention period ({} days) but kept: {} "
              "events there are not finished (pending deliveries or jobs)",
              d.day, o.retention_days, d.unfinished);
        }
      }
      if (o.stats && dropped > 0) o.stats->audit_partitions_dropped(dropped);
    } catch (const pg_unavailable& e) {
      spdlog::debug("audit: retention skipped, database unavailable: {}", e.what());
    } catch (const std::exception& e) {
      spdlog::warn("audit: retention failed (next round in {} s): {}", o.retention_interval.count(),
                   e.what());
    }
  }
};

using audit_pointer = audit_actor::stateful_pointer<audit_state>;

namespace {

audit_actor::behavior_type audit(audit_pointer self, audit_options o) {
  auto& st = self->state;
  st.o = std::move(o);
  if (st.o.backend == "elasticsearch")
    st.es = std::make_unique<es_client>(st.o.es_url, st.o.es_auth, st.o.es_timeout_ms);
  else
    st.store.emplace(st.o.dsn, st.o.listener_id);
  self->send(self, expire_atom::value);
  self->delayed_send(self, st.o.flush_interval, tick_atom::value);
  spdlog::info("audit: trail on ({}{})", st.o.backend,
               st.store ? ", retention " + std::to_string(st.o.retention_days) + " days"
                        : ", " + st.o.es_url);
  return {
      [self](tick_atom) {
        auto& s = self->state;
        s.round(s.o.max_round);
        if (self->current_sender().get() == self->ctrl())
          self->delayed_send(self, s.o.flush_interval, tick_atom::value);
      },
      [self](expire_atom) {
        auto& s = self->state;
        s.expire();
        if (self->current_sender().get() == self->ctrl())
          self->delayed_send(self, s.o.retention_interval, expire_atom::value);
      },
      [self](flush_atom) -> uint64_t {
        auto& s = self->state;
        uint64_t n = 0;
        const auto until = clock_type::now() + std::chrono::seconds(5);
        while (clock_type::now() < until && (s.o.queue->size() > 0 || !s.pending.empty())) {
          const auto w = s.round(std::chrono::seconds(1), true);
          n += w;
          if (w == 0) break;
        }
        return n;
      },
  };
}

}  // namespace

audit_actor spawn_audit(caf::actor_system& sys, audit_options o) {
  return sys.spawn<caf::detached>(audit, std::move(o));
}

}  // namespace fraiseql
