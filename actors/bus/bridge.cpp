#include "actors/bus/bridge.hpp"

#include "runtime/core/bus.hpp"
#include "runtime/core/clock.hpp"
#include "runtime/core/publish_tracker.hpp"
#include "runtime/io/nats/connection.hpp"
#include "runtime/ops/metrics.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <mutex>
#include <unordered_map>

namespace fraiseql {

namespace {

using bridge_actor = router_actor::extend<caf::reacts_to<done_atom>, caf::reacts_to<tick_atom>>;

/// Publish completions posted by nats.c's threads; the first of a burst
/// wakes the actor.
struct ack_inbox {
  std::mutex mtx;
  std::vector<publish_result> items;
  bool post(publish_result r) {
    std::lock_guard<std::mutex> g{mtx};
    items.push_back(std::move(r));
    return items.size() == 1;
  }
  std::vector<publish_result> take() {
    std::lock_guard<std::mutex> g{mtx};
    return std::exchange(items, {});
  }
};

constexpr auto tick_interval = std::chrono::milliseconds(100);

}  // namespace

struct bridge_state {
  static inline const char* name = "bridge";
  using pointer = bridge_actor::stateful_pointer<bridge_state>;
  pointer self = nullptr;
  bridge_options cfg;
  finish_sink checkpointer;
  std::shared_ptr<ack_inbox> inbox = std::make_shared<ack_inbox>();
  std::unique_ptr<async_publisher> publisher;
  std::unique_ptr<publish_tracker> tracker;
  std::unordered_map<uint64_t, event_ptr> events;  // admitted, not finished
  uint64_t routed = 0;
  bool connected = true;
  uint64_t seen_reconnects = 0;
  std::string source_member;  // ,"source":"<name>"
  bool tick_scheduled = false;
  uint64_t reported_failures = 0;

  void start() {
    tracker = std::make_unique<publish_tracker>(cfg.publish.max_pending);
    // Source names are subject tokens (letters, digits, - and _): no escaping.
    source_member = ",\"source\":\"" + cfg.source + "\"";
    bridge_actor handle{self};
    auto box = inbox;
    publisher = std::make_unique<async_publisher>(cfg.conn, cfg.publish,
                                                  [handle, box](const publish_result& r) {
                                                    if (box->post(r))
                                                      caf::anon_send(handle, done_atom::value);
                                                  });
    connected = cfg.conn->connected();
    seen_reconnects = cfg.conn->reconnects();
    if (!connected) tracker->disconnected();
    if (cfg.stats) cfg.stats->nats_connected(connected);
  }

  void route(const event_batch& batch) {
    for (const auto& ev : batch) {
      ++routed;
      if (ev->oversize_limit > 0) {
        bury(ev, "(listener)", "oversize", oversize_reason_text(*ev));
        continue;
      }
      events.emplace(ev->seq, ev);
      tracker->add(ev->seq, partition_of(ev->entity_type, ev->entity_id, cfg.partitions));
    }
    pump();
  }

  static std::string oversize_reason_text(const event& ev) {
    return "event of " + std::to_string(ev.row_bytes) + " bytes exceeds the per-event limit of " +
           std::to_string(ev.oversize_limit) +
           " bytes (listener.max_event_bytes): not published; raise the limit and replay the "
           "event to deliver it";
  }

  /// Dead-letters an event the bus cannot carry; finishes it once durable.
  void bury(const event_ptr& ev, const char* who, const char* type, std::string why) {
    spdlog::error("bridge: event {} ({} {}) not published: {}", ev->id, ev->event_type,
                  ev->entity_type, why);
    dlq_entry e;
    e.ev = ev;
    e.observer_name = who;
    e.action_type = type;
    e.idempotency_key = ev->id + ":" + who + ":" + type;
    e.last_error = std::move(why);
    e.first_attempt_ms = e.last_attempt_ms = unix_ms();
    const uint64_t seq = ev->seq;
    self->request(cfg.dlq, caf::infinite, bury_atom::value, std::move(e))
        .then(
            [this, seq](int64_t) {
              if (cfg.stats) cfg.stats->oversize_event();
              self->send(checkpointer, finish_atom::value, std::vector<uint64_t>{seq});
            },
            [seq](const caf::error& err) {
              // Fenced out or stopping: unfinished, so the checkpoint cannot
              // pass it; the next leader reads it again.
              spdlog::error("bridge: event seq {} not written to the DLQ: {}", seq,
                            caf::to_string(err));
            });
  }

  /// Publishes what the tracker allows.
  void pump() {
    check_connection();
    for (;;) {
      auto seqs = tracker->take(256);
      if (seqs.empty()) break;
      for (size_t i = 0; i < seqs.size(); ++i) {
        const uint64_t seq = seqs[i];
        auto it = events.find(seq);
        if (it == events.end()) continue;  // cannot happen: added with its event
        const event& ev = *it->second;
        const auto subject =
            event_subject(cfg.subject_prefix, cfg.source,
                          partition_of(ev.entity_type, ev.entity_id, cfg.partitions),
                          ev.entity_type, ev.event_type);
        auto r = publisher->publish(subject, with_source(ev.envelope_json),
                                    event_msg_id(cfg.source, ev.id), seq);
        if (r.accepted()) continue;
        if (r.status == async_publisher::submit::too_large) {
          tracker->abandon(seq);  // finished once the DLQ row is durable
          auto ev_ptr = it->second;
          events.erase(it);
          bury(ev_ptr, "(bridge)", "nats",
               r.error + " (the server's max_payload; raise it, or keep events smaller)");
          continue;
        }
        // Full or failed (connection closed): back to the front, in order,
        // and try again on the next tick.
        for (size_t j = seqs.size(); j > i; --j) tracker->refused(seqs[j - 1]);
        if (r.status == async_publisher::submit::failed)
          spdlog::warn("bridge: publish not accepted, retrying: {}", r.error);
        schedule_tick();
        return report();
      }
    }
    if (tracker->paused() || tracker->queued() > 0) schedule_tick();
    report();
  }

  /// The envelope as published: the stored text with `"source": "<source
  /// name>"` added as its last member, so receivers of a multi-database
  /// topology can tell the databases apart (entity ids may repeat across
  /// them). A text splice: the envelope is a JSON object this engine wrote.
  std::string with_source(const std::string& envelope) const {
    const auto end = envelope.rfind('}');
    if (end == std::string::npos) return envelope;
    std::string out;
    out.reserve(envelope.size() + source_member.size());
    out.append(envelope, 0, end);
    out += envelope.find(':') == std::string::npos ? source_member.substr(1) : source_member;
    out.append(envelope, end, std::string::npos);
    return out;
  }

  void check_connection() {
    const bool up = cfg.conn->connected();
    // A reconnect between two looks (the connection was lost and is back):
    // publishes outstanding on the old connection may be lost, so nothing
    // newer goes out before they completed (publish_tracker's rule).
    const uint64_t reconnects = cfg.conn->reconnects();
    if (reconnects != seen_reconnects) {
      seen_reconnects = reconnects;
      if (up && connected) {
        spdlog::warn(
            "bridge: NATS connection was lost and is back ({}); publishing waits for "
            "the publishes outstanding then",
            cfg.conn->connected_url());
        tracker->disconnected();
        tracker->connected();
      }
    }
    if (up == connected) return;
    connected = up;
    if (up) {
      spdlog::info("bridge: NATS connection back ({}); publishing resumes",
                   cfg.conn->connected_url());
      tracker->connected();
    } else {
      spdlog::warn("bridge: NATS connection lost; publishing paused (reconnecting)");
      tracker->disconnected();
    }
    if (cfg.stats) cfg.stats->nats_connected(up);
  }

  void schedule_tick() {
    if (tick_scheduled) return;
    tick_scheduled = true;
    self->delayed_send(self, tick_interval, tick_atom::value);
  }

  void on_acks() {
    auto done = inbox->take();
    const uint64_t reordered_before = tracker->reordered();
    uint64_t stored = 0, duplicates = 0, failures = 0;
    for (const auto& r : done) {
      if (r.stored()) {
        if (tracker->stored(r.token, r.outcome == publish_result::status::duplicate,
                            r.stream_seq)) {
          ++stored;
          if (r.outcome == publish_result::status::duplicate) ++duplicates;
        }
      } else {
        ++failures;
        if (failures == 1 && reported_failures < 10)
          spdlog::warn("bridge: publish of event seq {} failed, publishing it again: {}", r.token,
                       r.error);
        ++reported_failures;
        tracker->failed(r.token);
      }
    }
    auto finished = tracker->drain_finished();
    for (auto seq : finished) events.erase(seq);
    if (!finished.empty()) self->send(checkpointer, finish_atom::value, std::move(finished));
    if (cfg.stats) {
      if (stored > 0) cfg.stats->nats_published(stored, duplicates);
      if (failures > 0) cfg.stats->nats_publish_failed(failures);
      if (tracker->reordered() > reordered_before)
        cfg.stats->nats_reordered(tracker->reordered() - reordered_before);
    }
    if (failures == 0) reported_failures = 0;
    pump();
  }

  void report() {
    if (!cfg.stats) return;
    cfg.stats->nats_publish_pending(tracker->in_flight(), tracker->queued());
  }
};

namespace {

bridge_actor::behavior_type bridge(bridge_state::pointer self, bridge_options cfg,
                                   finish_sink checkpointer) {
  auto& st = self->state;
  st.self = self;
  st.cfg = std::move(cfg);
  st.checkpointer = std::move(checkpointer);
  st.start();
  return {
      [self](route_atom, const event_batch& batch) { self->state.route(batch); },
      [self](status_atom) {
        return std::make_tuple(static_cast<uint64_t>(self->state.events.size()),
                               self->state.routed);
      },
      [self](done_atom) { self->state.on_acks(); },
      [self](tick_atom) {
        auto& st = self->state;
        st.tick_scheduled = false;
        st.tracker->resume();
        st.pump();
      },
  };
}

}  // namespace

router_actor spawn_bridge(caf::actor_system& sys, bridge_options cfg, finish_sink checkpointer) {
  return sys.spawn(bridge, std::move(cfg), std::move(checkpointer));
}

}  // namespace fraiseql
