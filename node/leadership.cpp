#include "node/leadership.hpp"

#include "node/identity.hpp"
#include "node/node.hpp"
#include "runtime/core/cursor.hpp"
#include "runtime/io/pg/checkpoint_store.hpp"
#include "runtime/io/pg/lease.hpp"
#include "runtime/io/pg/migrations.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace fraiseql {

void require_schema(const std::string& dsn, const std::string& config_source) {
  const int have = current_schema_version(dsn);
  if (have < latest_schema_version())
    throw std::runtime_error("database schema version " + std::to_string(have) +
                             " is older than this binary needs (" +
                             std::to_string(latest_schema_version()) +
                             "): run `observer-node migrate --config " + config_source + "`");
}

std::shared_ptr<leader_lease> take_leadership(const std::string& dsn,
                                              const std::string& listener_id,
                                              std::chrono::milliseconds ttl,
                                              checkpoint_store& store) {
  auto lease = std::make_shared<leader_lease>(dsn, listener_id, node_identity(), ttl);
  auto epoch = lease->try_acquire();
  if (!epoch)
    throw node::standby("listener '" + listener_id + "' is led by another node; standing by");
  store.set_epoch(*epoch);
  spdlog::info("node: leading listener '{}' (epoch {})", listener_id, *epoch);
  return lease;
}

checkpoint_record load_checkpoint(checkpoint_store& store, const std::string& listener_id) {
  checkpoint_record resume = store.load().value_or(checkpoint_record{});
  spdlog::info("node: listener '{}' resumes after txid {} pk {}{}{} ({} events finished before)",
               listener_id, resume.pos.txid, resume.pos.pk,
               resume.pending.empty() ? "" : ", transactions running then: ",
               pending_text(resume.pending), resume.events_total);
  return resume;
}

}  // namespace fraiseql
