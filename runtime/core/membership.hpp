#pragma once

// The cluster's membership view, without CAF or I/O: what each coordinator
// knows of the nodes it hears from (actors/cluster). Pure and clock-injected,
// so the rules below are unit- and property-tested in simulated time.
//
// - A member is `alive` while its last heartbeat is younger than the timeout,
//   `unreachable` after that or as soon as its connection drops, and forgotten
//   `forget_after` later. A member that leaves gracefully is removed at once.
// - Names are unique: a join or heartbeat from a second process with a name
//   the view already holds for a live member is refused (and never replaces
//   it); an unreachable holder of the name is replaced (a restart).
// - Per listener id, the leader is the member in state `leader` with the
//   highest lease epoch, preferring reachable ones. The view is advisory:
//   who may act rests on the PostgreSQL lease and its fence.

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

/// What a node says of itself in every join and heartbeat.
struct member_info {
  std::string name;     // [cluster] node_name
  std::string address;  // host:port of its coordinator
  std::string process;  // host:pid: tells two incarnations of one name apart
  std::string version;
  std::string role;   // process role (--role)
  std::string state;  // starting | standby | leader | dry-run | stopping | stopped
  std::string listener_id;
  uint64_t epoch = 0;  // lease epoch while it leads
  bool listener_healthy = false;
  std::optional<uint64_t> backlog;  // events read and unfinished, while it leads
  std::vector<std::string> peers;   // coordinator addresses it knows (gossip)
};

boost::json::value to_json(const member_info& m);
/// Throws std::invalid_argument naming the missing or mistyped field.
member_info member_from_json(const boost::json::value& v);

class membership {
 public:
  using clock = std::chrono::steady_clock;

  struct entry {
    member_info info;
    clock::time_point last_heard;
    bool reachable = true;
    clock::time_point unreachable_since;
    bool self = false;
  };

  struct listener_view {
    std::string listener_id;
    std::string leader;  // empty: no member claims it
    uint64_t epoch = 0;
    bool leader_healthy = false;
    uint32_t healthy = 0;
    uint32_t members = 0;
  };

  struct verdict {
    bool accepted = true;
    std::string reason;  // why not
  };

  membership(member_info self, std::chrono::milliseconds timeout,
             std::chrono::milliseconds forget_after, clock::time_point now);

  /// A join or heartbeat from `m`.
  verdict observe(const member_info& m, clock::time_point now);
  /// This node's own state (every tick).
  void update_self(member_info m, clock::time_point now);
  /// `process` left gracefully: removed at once. False when unknown.
  bool leave(const std::string& process);
  /// The connection to `process` dropped: unreachable at once.
  bool lost(const std::string& process, clock::time_point now);
  /// Heartbeat timeouts and forgetting.
  void tick(clock::time_point now);

  bool healthy(const entry& e) const;
  const entry* find_process(const std::string& process) const;
  const entry* find_name(const std::string& name) const;
  const std::map<std::string, entry>& members() const { return by_name_; }
  const member_info& self() const { return by_name_.at(self_name_).info; }

  uint32_t size() const { return static_cast<uint32_t>(by_name_.size()); }
  uint32_t healthy_count() const;
  /// One row per listener id, sorted.
  std::vector<listener_view> listeners() const;
  /// Addresses of the reachable members (self included): what we gossip.
  std::vector<std::string> addresses() const;
  struct leader_change {
    std::string listener_id;
    std::string leader;  // who leads with the new epoch
    uint64_t epoch = 0;
  };
  /// Leaders seen with a newer epoch than a known one, since the last call.
  std::vector<leader_change> take_leader_changes();

  /// {"members": [...], "listeners": [...]} with ages relative to `now`.
  boost::json::value to_json(clock::time_point now) const;

 private:
  void note_leaders();
  std::map<std::string, entry> by_name_;
  std::string self_name_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds forget_after_;
  std::map<std::string, uint64_t> last_epoch_;  // per listener id
  std::vector<leader_change> changes_;
};

}  // namespace fraiseql
