#pragma once

// The audit trail's records and the bounded queue between the pipeline and the
// audit actor (actors/history/audit). Pure, thread-safe, no CAF.
//
// Why a queue of our own rather than messages to the actor: delivery must
// never wait for the audit trail, and memory must stay bounded when its
// backend is slow or down. A CAF mailbox is unbounded; this queue is bounded
// in records and in bytes, and a record that does not fit is dropped and
// counted (observer_audit_dropped_total; the actor logs a warning), never
// waited for. The router and the action pool push (one short lock, no I/O);
// the audit actor takes batches on its own timer and writes them.
//
// Records copy what they need (the envelope's text, not the event): holding
// an event_ptr would keep the event charged to the listener's byte budget until
// the audit actor wrote it, so a slow backend would slow the listener down.

#include "messages/attempt.hpp"
#include "messages/event.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace fraiseql {

/// One routed event.
struct audit_event_record {
  std::string event_id;
  /// The envelope's timestamp (RFC 3339): the partition key.
  std::string timestamp;
  std::string event_type;  // INSERT | UPDATE | DELETE | CUSTOM
  std::string entity_type;
  std::string entity_id;
  position pos;
  /// Observers that matched, and how many actions they run in all.
  std::vector<std::string> observers;
  uint32_t actions = 0;
  /// The serialized envelope (the writer extracts data, tenant and user).
  std::string envelope_json;
  uint64_t bytes() const;
};

/// One finished attempt of one action.
struct audit_attempt_record {
  std::string event_id;
  std::string event_timestamp;                     // the event's, as in audit_event_record
  std::string entity_type, entity_id, event_type;  // the event's
  std::string observer;
  uint32_t action_index = 0;
  std::string action_type;
  uint32_t attempt = 0;
  /// succeeded | retrying | failed | enqueued (see sql/0008_audit.sql)
  std::string status;
  /// 0: none (not HTTP, or no answer).
  int http_status = 0;
  std::string error;
  double latency_ms = 0;
  std::string idempotency_key;
  int64_t ended_ms = 0;  // Unix epoch milliseconds
  uint64_t bytes() const;
};

/// The spec's event kind of a modification type: INSERT -> created,
/// UPDATE -> updated, DELETE -> deleted, anything else -> lower case.
std::string audit_event_kind(const std::string& event_type);

/// The HTTP status named by an attempt's error ("HTTP 503: ..."), else 0.
int audit_http_status(const std::string& error);

/// Envelopes larger than this are recorded without their data.
constexpr size_t audit_max_envelope_bytes = 1u << 20;

/// A record of `ev` as the router sees it (matched observers' names and
/// their action count).
audit_event_record audit_event_of(const event& ev, std::vector<std::string> observers,
                                  uint32_t actions);

class observer_registry;
class audit_queue;

// --- Hooks: one call where the router matched an event, one where an attempt
// ended (router.cpp, action_pool.cpp). They build a record and push it; a full
// queue drops it (counted). No I/O, one short lock. ---

/// The router matched `ev` against `observers` (registry indices; may be empty).
void audit_routed(audit_queue& q, const event& ev, const observer_registry& reg,
                  const std::vector<uint32_t>& observers);

/// One attempt of action `action` of observer `observer` ended with `o`;
/// `will_retry`: it is tried again. `status` as audit_attempt_record::status
/// ("enqueued" for an async action handed to the job queue).
void audit_attempt(audit_queue& q, const event& ev, const observer_registry& reg, uint32_t observer,
                   uint32_t action, uint32_t attempt, const attempt_outcome& o, bool will_retry,
                   double latency_ms, const char* status = nullptr);

class audit_queue {
 public:
  /// At most `max_records` records and `max_bytes` bytes wait at once.
  audit_queue(size_t max_records, uint64_t max_bytes);

  /// False when the queue is full: the record is dropped and counted.
  bool push(audit_event_record r);
  bool push(audit_attempt_record r);

  struct batch {
    std::vector<audit_event_record> events;
    std::vector<audit_attempt_record> attempts;
    size_t size() const { return events.size() + attempts.size(); }
    bool empty() const { return events.empty() && attempts.empty(); }
  };
  /// Up to `max` records, oldest first (events and attempts each in order).
  batch take(size_t max);
  /// Puts a batch that could not be written back in front (the writer
  /// retries it); what no longer fits is dropped and counted.
  void put_back(batch b);

  size_t size() const;
  uint64_t bytes() const;
  /// Records dropped because the queue was full, since start.
  uint64_t dropped() const { return dropped_.load(); }

 private:
  bool fits(uint64_t b) const;
  size_t max_records_;
  uint64_t max_bytes_;
  mutable std::mutex mu_;
  std::deque<audit_event_record> events_;
  std::deque<audit_attempt_record> attempts_;
  uint64_t bytes_ = 0;
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace fraiseql
