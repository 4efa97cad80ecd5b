#pragma once

// Replay and backfill rules without I/O (docs/history.md): which observers a
// replayed copy may run, how a replay bound is read, when the backfill may
// write its next chunk. The SQL lives in runtime/io/pg/history_store.cpp, the
// actor in actors/history/history_writer.cpp.

#include "messages/event.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

class observer_registry;

/// Narrows the observers matched for `ev`: a replayed copy requested by
/// another listener id runs none (every listener of the database reads the
/// copy; only the requester delivers it), and one requested for a named
/// observer runs only that observer. Other events are left alone.
void narrow_replay_observers(const event& ev, const std::string& listener_id,
                             const observer_registry& registry, std::vector<uint32_t>& observers);

/// A bound of `observerctl replay --from/--to`: a change-log event id (uuid)
/// or a time (any text PostgreSQL's timestamptz accepts; checked there).
struct replay_bound {
  enum class kind { event_id, time } k = kind::time;
  /// The uuid in lower case, or the time text as given (trimmed).
  std::string text;
};

/// Reads a bound; an empty or blank text is nullopt. A uuid (36 characters,
/// hex digits and dashes at 8-4-4-4-12, any case) is an event id; anything
/// else is a time.
std::optional<replay_bound> parse_replay_bound(const std::string& text);

/// Paces the chunks of replays and backfills against the pipeline, so live
/// events queue behind little of them. A chunk's rows become visible at once
/// when it commits, and a live event committed after it is delivered after
/// them, so the chunk size is the queue a live event may find ahead of it:
/// - size: grows by half while a chunk's first half finishes within
///   `target` of its commit, shrinks in proportion when it takes longer
///   (the pipeline is busy), within [min_rows, batch]; it starts at min_rows;
/// - when: after half of the previous chunk has finished since it was
///   written (the listener has read it) and while the pipeline holds fewer
///   than half a chunk of events (read, not finished).
/// After `max_wait` without that, a chunk goes anyway: a pipeline that live
/// events alone keep full (or a chunk nobody reads) slows a backfill down to
/// one chunk per `max_wait`, never stops it. Clock passed in.
class chunk_pacer {
 public:
  using clock = std::chrono::steady_clock;
  explicit chunk_pacer(uint32_t batch,
                       std::chrono::milliseconds target = std::chrono::milliseconds(5),
                       std::chrono::milliseconds max_wait = std::chrono::seconds(2),
                       uint32_t min_rows = 10)
      : batch_(std::max<uint32_t>(1, batch)),
        min_rows_(std::min(std::max<uint32_t>(1, min_rows), std::max<uint32_t>(1, batch))),
        target_(target),
        max_wait_(max_wait),
        size_(min_rows_) {}
  /// `in_flight`, `finished`: the checkpointer's (events admitted and not
  /// finished, events finished since start).
  bool may_write(uint64_t in_flight, uint64_t finished, clock::time_point now) {
    if (!started_) {
      started_ = true;
      written_at_ = now;  // waiting starts now
    }
    if (rows_ > 0 && !drained_ && finished >= finished_at_write_ + (rows_ + 1) / 2) {
      drained_ = true;  // half of the last chunk is through: size the next one
      const double took = std::chrono::duration<double>(now - written_at_).count();
      const double goal = std::chrono::duration<double>(target_).count();
      double next = took <= goal ? size_ * 1.5 + 1 : size_ * std::max(0.25, goal / took);
      size_ = static_cast<uint32_t>(std::min<double>(batch_, std::max<double>(min_rows_, next)));
    }
    if (now - written_at_ >= max_wait_) return true;
    if (rows_ > 0 && !drained_) return false;
    return in_flight == 0 || in_flight * 2 < size_;
  }
  /// Rows for the next chunk.
  uint32_t chunk_rows() const { return size_; }
  /// A chunk of `rows` rows was committed when `finished` events were done.
  void wrote(uint64_t rows, uint64_t finished, clock::time_point now) {
    rows_ = rows;
    finished_at_write_ = finished;
    written_at_ = now;
    drained_ = rows == 0;
  }

 private:
  uint32_t batch_;
  uint32_t min_rows_;
  std::chrono::milliseconds target_;
  std::chrono::milliseconds max_wait_;
  uint32_t size_;
  bool started_ = false;
  uint64_t rows_ = 0;
  uint64_t finished_at_write_ = 0;
  clock::time_point written_at_{};
  bool drained_ = true;
};

}  // namespace fraiseql

namespace fraiseql {

/// What makes an operator's SQL condition (`observerctl backfill --where`)
/// unfit to be placed inside `WHERE (...)`, before PostgreSQL sees it: it must
/// be one expression that stays inside its parentheses, so no `;`, no
/// comment, no closing parenthesis without its opening one, every quote and
/// parenthesis closed. String literals ('...', E'...', $tag$...$tag$) and
/// quoted identifiers may hold anything. Returns the problem with its
/// 1-based character position, or nullopt. (PostgreSQL then checks the rest:
/// EXPLAIN in a read-only transaction, history_store::create_backfill.)
std::optional<std::string> sql_condition_problem(const std::string& sql);

}  // namespace fraiseql
