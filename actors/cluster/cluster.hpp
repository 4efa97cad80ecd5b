#pragma once

// The cluster of a node ([cluster]): a failover coordinator actor published
// over CAF's middleman (messages/cluster.hpp) that joins the seed nodes, learns
// the other members from them, exchanges heartbeats with every member, watches
// their connections (down messages) and keeps the membership view
// (runtime/core/membership.hpp). The view feeds `observerctl status`, the
// metrics (observer_listener_health per listener id, cluster size, leader
// changes) and the logs; it is advisory: who leads rests on the PostgreSQL
// lease and its fence. Its own actor system, so it answers while the node
// stands by. No CAF in this header.

#include <boost/json/value.hpp>

#include <cstdint>
#include <memory>

namespace fraiseql {

class node;

class cluster_server {
 public:
  /// Publishes the coordinator for `n` (which must outlive this object) and
  /// starts joining the seeds. Throws std::runtime_error naming the address
  /// when it cannot listen.
  explicit cluster_server(node& n);
  /// Tells the peers this node leaves (leave()), then stops.
  ~cluster_server();
  cluster_server(const cluster_server&) = delete;
  cluster_server& operator=(const cluster_server&) = delete;

  /// Tells the peers this node leaves, so their views drop it at once rather
  /// than after the connection timeout; the coordinator stops. Idempotent.
  void leave();

  /// The port the coordinator is published on.
  uint16_t port() const;
  /// The membership view now (thread-safe): {"name", "address", "members",
  /// "listeners"} as runtime/core/membership.hpp renders it.
  boost::json::value view() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace fraiseql
