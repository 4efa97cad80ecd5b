#pragma once

// The audit trail's writer ([audit], docs/history.md): a detached actor that
// takes the records the router and the action pool queued
// (runtime/core/audit.hpp) every flush interval and writes them in batches,
// to PostgreSQL (runtime/io/pg/audit_store) or to Elasticsearch / OpenSearch
// (`_bulk`, runtime/core/es_bulk + runtime/io/net/es_client). Nothing on the
// delivery path waits for it: when it cannot keep up, the queue drops records
// and counts them. With PostgreSQL it also creates the day partitions ahead
// and drops expired ones (retention) on a slower timer.

#include "messages/actors.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace fraiseql {

class audit_queue;
class metrics;

struct audit_options {
  std::shared_ptr<audit_queue> queue;
  /// "postgres" | "elasticsearch"
  std::string backend = "postgres";
  /// libpq DSN (postgres).
  std::string dsn;
  std::string listener_id;
  /// Records per write.
  uint32_t batch_size = 2000;
  std::chrono::milliseconds flush_interval{200};
  /// A flush round stops after this long (the rest waits for the next tick).
  std::chrono::milliseconds max_round{std::chrono::seconds(1)};
  uint32_t retention_days = 90;
  std::chrono::seconds retention_interval{3600};
  /// Elasticsearch / OpenSearch.
  std::string es_url;
  std::string es_index = "fraiseql-audit";
  /// Credentials ("user:password" or an API key); empty: none.
  std::string es_auth;
  uint32_t es_bulk_max_docs = 1000;
  uint32_t es_bulk_max_bytes = 5u << 20;
  uint32_t es_timeout_ms = 10000;
  std::chrono::milliseconds es_min_backoff{100};
  std::chrono::milliseconds es_max_backoff{30000};
  std::shared_ptr<metrics> stats;
};

/// Detached: its writes block its own thread only.
audit_actor spawn_audit(caf::actor_system& sys, audit_options o);

}  // namespace fraiseql
