#pragma once

// The steps before a node spawns anything: the schema check, the leader lease,
// the checkpoint to resume from. No CAF here.

#include "messages/checkpoint.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace fraiseql {

class checkpoint_store;
class leader_lease;

/// Throws std::runtime_error (naming the migrate command for `config_source`)
/// when the database schema is older than this binary needs.
void require_schema(const std::string& dsn, const std::string& config_source);

/// Takes the leader lease of `listener_id` (holder: node_identity()) and fences
/// `store` with its epoch. Throws node::standby when another node leads.
std::shared_ptr<leader_lease> take_leadership(const std::string& dsn,
                                              const std::string& listener_id,
                                              std::chrono::milliseconds ttl,
                                              checkpoint_store& store);

/// The saved checkpoint of `listener_id` (the start of the log when none).
checkpoint_record load_checkpoint(checkpoint_store& store, const std::string& listener_id);

}  // namespace fraiseql
