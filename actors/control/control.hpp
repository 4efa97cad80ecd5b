#pragma once

// The control plane of a node: one typed control actor (messages/control.hpp)
// published over CAF's middleman on [control] bind:port, through CAF's OpenSSL
// module when TLS is configured (mutual: peers must present a certificate the
// CA signed). It runs in its own actor system, up before the node leads, so
// `observerctl status` answers while the node stands by. The actor is detached:
// its database queries and redrives block its own thread, never the scheduler.
// No CAF in this header.

#include <boost/json/value.hpp>

#include <cstdint>
#include <functional>
#include <memory>

namespace fraiseql {

class node;

class control_server {
 public:
  /// The cluster's membership view (actors/cluster/cluster.hpp); empty
  /// without [cluster].
  using view_fn = std::function<boost::json::value()>;

  /// Publishes the control actor for `n` (which must outlive this object).
  /// Throws std::runtime_error naming the address when it cannot listen.
  explicit control_server(node& n, view_fn cluster_view = {});
  ~control_server();
  control_server(const control_server&) = delete;
  control_server& operator=(const control_server&) = delete;

  /// The port the control actor is published on.
  uint16_t port() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace fraiseql
