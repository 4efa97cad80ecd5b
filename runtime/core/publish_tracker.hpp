#pragma once

// The bridge's publishing state (actors/bus/bridge): which events wait to be
// published, which are unacknowledged, which must be published again, and
// when publishing pauses. Pure and single-threaded (the bridge actor owns
// it); the property test drives it with random ack orders and failures.
//
// Rules:
// - An event is finished (handed to the checkpointer) only once the server
//   acknowledged it as stored, or as a duplicate of a message it stored
//   earlier. A failed publish (error, no ack in time) never finishes it: the
//   event is published again with the same Msg-Id (the stream's duplicate
//   window stores it once).
// - Order. Events are published in admission order. A failure pauses
//   publishing: nothing new is sent until every outstanding publish has
//   completed; then the failed events are published again, in admission
//   order, before anything newer. A disconnect pauses publishing the same
//   way: until the connection is back and every publish outstanding at the
//   disconnect has completed (acked, or failed by its ack timeout and queued
//   again ahead of the rest). So a message lost with a dying
//   connection is not overtaken by later messages of the connection that
//   replaces it. What this cannot prevent: a later event already stored
//   before the earlier one's failure was known (a stream leader change
//   between two publishes). Such an event, stored again later and not as a
//   duplicate, is counted as reordered, per partition.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>
#include <vector>

namespace fraiseql {

class publish_tracker {
 public:
  /// Unacknowledged publishes at most.
  explicit publish_tracker(size_t window) : window_(window == 0 ? 1 : window) {}

  /// An event to publish (sequence numbers increase; partition as published).
  void add(uint64_t seq, uint32_t partition);

  /// Events to publish now, in order, at most `max` (and the window's room);
  /// none while paused. They count as in flight from here on.
  std::vector<uint64_t> take(size_t max);
  /// The publisher did not accept `seq` (full, connection closed): it goes
  /// back to the front, and publishing pauses until a completion or
  /// resume().
  void refused(uint64_t seq);
  /// Lifts a pause caused by refused() (a timer's retry).
  void resume() { refused_ = false; }

  /// The server acknowledged `seq`: stored at `stream_seq` (0: unknown), now
  /// or, for a `duplicate`, earlier. Returns true when it finished (false:
  /// unknown or settled).
  bool stored(uint64_t seq, bool duplicate, uint64_t stream_seq = 0);
  /// The publish of `seq` failed: it will be published again.
  void failed(uint64_t seq);
  /// `seq` (taken) will never be published (too large for the server): it
  /// is forgotten without finishing; the caller finishes it another way.
  void abandon(uint64_t seq);

  /// The connection dropped: nothing is published until it is back and
  /// every publish outstanding now has completed (those lost with the old
  /// connection fail by their ack timeout and go again first).
  void disconnected() {
    connected_ = false;
    if (in_flight_ > 0) draining_ = true;
  }
  void connected() { connected_ = true; }

  /// Events finished since the last call, in completion order.
  std::vector<uint64_t> drain_finished();

  bool paused() const;
  size_t in_flight() const { return in_flight_; }
  /// Waiting to be published (new and failed).
  size_t queued() const { return queue_.size() + failed_.size(); }
  /// Published more than once (after a failure).
  uint64_t republished() const { return republished_; }
  /// Stored behind a later event of its partition (see the header comment):
  /// a republished event whose (first) copy sits at a stream position after
  /// that of a later event of its partition.
  uint64_t reordered() const { return reordered_; }

 private:
  enum class state { queued, in_flight, failed };
  struct entry {
    uint32_t partition = 0;
    state st = state::queued;
    bool retry = false;  // published before and failed
  };
  /// Moves the failed events to the front once nothing is outstanding.
  void settle();

  size_t window_;
  std::unordered_map<uint64_t, entry> entries_;
  std::deque<uint64_t> queue_;
  std::vector<uint64_t> failed_;
  std::vector<uint64_t> finished_;
  /// Per partition, while any of its events is outstanding: the events
  /// taken and not finished; the stream positions of events finished after
  /// the oldest of them (an outstanding event that was republished can land
  /// behind one of these); and of republished events (only those can land
  /// behind a later event whose ack comes after theirs: one connection keeps
  /// first publishes in order). `counted`: already counted as reordered.
  struct stored_pos {
    uint64_t stream_seq = 0;
    bool counted = false;
  };
  struct partition_order {
    std::set<uint64_t> outstanding;
    std::map<uint64_t, stored_pos> later;
    std::map<uint64_t, stored_pos> retried;
  };
  std::unordered_map<uint32_t, partition_order> order_;
  size_t in_flight_ = 0;
  bool connected_ = true;
  bool refused_ = false;
  bool draining_ = false;  // since a disconnect, until nothing is outstanding
  uint64_t republished_ = 0;
  uint64_t reordered_ = 0;
};

}  // namespace fraiseql
