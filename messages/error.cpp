#include "messages/error.hpp"

namespace fraiseql {

const char* to_string(ec x) {
  switch (x) {
    case ec::none: return "none";
    case ec::invalid_config: return "invalid_config";
    case ec::database_unavailable: return "database_unavailable";
    case ec::database_error: return "database_error";
    case ec::schema_mismatch: return "schema_mismatch";
    case ec::action_failed: return "action_failed";
    case ec::action_rejected: return "action_rejected";
    case ec::shutting_down: return "shutting_down";
  }
  return "unknown";
}

}  // namespace fraiseql
