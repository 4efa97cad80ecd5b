#pragma once

// The observer registry: observers compiled from config, indexed by
// (event type, entity) so matching an event costs a few hash lookups, plus
// their conditions (JMESPath over the event envelope). Pure: no actors, no I/O.

#include "messages/event.hpp"
#include "runtime/config.hpp"

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace fraiseql {

struct compiled_observer;

/// Outcome of matching one event.
struct match_result {
  /// Indices of observers that fire, ascending.
  std::vector<uint32_t> observers;
  /// Conditions that failed to evaluate ("observer: message"); those observers
  /// do not fire for this event.
  std::vector<std::string> errors;
};

class observer_registry {
public:
  /// Compiles every observer; on failure returns the problems (observer name,
  /// expression, column) and leaves `errors` non-empty.
  static std::shared_ptr<const observer_registry> build(const std::vector<observer_config>& obs,
                                                        std::vector<std::string>& errors);
  ~observer_registry();

  match_result match(const event& ev) const;

  size_t size() const;
  const observer_config& config(uint32_t index) const;

private:
  observer_registry() = default;
  std::vector<std::unique_ptr<compiled_observer>> observers_;
  /// "EVENT_TYPE\x1f" + entity (either may be "*") -> observer indices.
  std::unordered_map<std::string, std::vector<uint32_t>> index_;
};

}  // namespace fraiseql
