#pragma once

// The node's monitoring HTTP endpoint (civetweb): /metrics (Prometheus text
// exposition), /healthz and /readyz (orchestrator probes). It runs from the
// node's construction on, so probes answer while the node stands by or waits
// for the database, not only once it leads.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace fraiseql {

class health_state;

class monitoring_server {
 public:
  /// Listens on bind:port (0: any free port). `scrape` renders /metrics.
  /// Throws std::runtime_error naming the address when it cannot listen.
  monitoring_server(const std::string& bind, uint32_t port, std::function<std::string()> scrape,
                    std::shared_ptr<const health_state> health);
  /// Stops at once (no poll-interval wait), finishing requests in progress.
  ~monitoring_server();
  monitoring_server(const monitoring_server&) = delete;
  monitoring_server& operator=(const monitoring_server&) = delete;

  uint16_t port() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace fraiseql
