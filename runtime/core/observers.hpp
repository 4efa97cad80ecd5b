#pragma once

// The observer registry: observers compiled from config, indexed by
// (event type, entity) so matching an event costs a few hash lookups, plus
// their conditions (JMESPath over the event envelope). Pure: no actors, no I/O.

#include "messages/event.hpp"
#include "runtime/config/model.hpp"
#include "runtime/expr/template.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fraiseql {

struct compiled_observer;

/// Templates of one action, compiled at config load. An absent template means
/// the default (the configured literal, or the envelope as body).
struct action_templates {
  std::optional<expr::template_> url;
  std::optional<expr::template_> body;
  std::map<std::string, expr::template_> headers;
  std::optional<expr::template_> message;  // log and slack actions
  std::optional<expr::template_> subject;  // email, nats
  std::optional<expr::template_> text;     // email body
  /// Database params: the JSON object, and its string leaves that are
  /// templates, by JSON pointer (rendered with render_value).
  boost::json::value params;
  std::vector<std::pair<std::string, expr::template_>> param_templates;
};

/// Renders an action's request parts for one event; errors name the part.
struct rendered_webhook {
  std::string url;
  std::string body;
  std::vector<std::string> headers;  // "Name: value"
};

/// Outcome of matching one event.
struct match_result {
  /// Indices of observers that fire, ascending.
  std::vector<uint32_t> observers;
  struct condition_error {
    uint32_t observer;
    std::string message;  // "observer 'name': <error>"
  };
  /// Conditions that failed to evaluate; those observers do not fire.
  std::vector<condition_error> errors;
};

/// Why one observer does or does not fire for an event (`observerctl debug-event`).
struct match_explanation {
  uint32_t observer = 0;
  /// event_type and entity filters both accept the event.
  bool filter_matches = false;
  /// "fires" | "filter does not match" | "condition false" | "condition error"
  std::string verdict;
  /// The condition's value as JSON, or the evaluation error; empty without condition.
  std::string condition_detail;
};

class observer_registry {
 public:
  /// Compiles every observer; on failure returns the problems (observer name,
  /// expression, column) and leaves `errors` non-empty.
  static std::shared_ptr<const observer_registry> build(const std::vector<observer_config>& obs,
                                                        std::vector<std::string>& errors);
  ~observer_registry();

  match_result match(const event& ev) const;
  /// Every observer's verdict for `ev`, in registry order (same rules as match()).
  std::vector<match_explanation> explain(const event& ev) const;

  size_t size() const;
  const observer_config& config(uint32_t index) const;

  /// URL, body and extra headers of a webhook action for `ev`. Returns the
  /// error text when a template fails to render (the attempt then fails
  /// without retry: the same event renders the same way every time).
  std::optional<std::string> render_webhook(uint32_t observer, uint32_t action, const event& ev,
                                            rendered_webhook& out) const;
  /// Slack's JSON payload ({"text", and channel/username/icon_emoji when set}).
  std::optional<std::string> render_slack(uint32_t observer, uint32_t action, const event& ev,
                                          std::string& payload) const;
  /// Subject and body text of an email action (body: the envelope when empty).
  std::optional<std::string> render_email(uint32_t observer, uint32_t action, const event& ev,
                                          std::string& subject, std::string& body) const;
  /// The params object of a database action as JSON text.
  std::optional<std::string> render_database_params(uint32_t observer, uint32_t action,
                                                    const event& ev, std::string& params) const;
  /// Subject and payload of a nats action (payload: the envelope when no
  /// body_template). A rendered subject that is not one plain subject
  /// (check_nats_subject) is an error too.
  std::optional<std::string> render_nats(uint32_t observer, uint32_t action, const event& ev,
                                         std::string& subject, std::string& payload) const;
  /// Message of a log action (the envelope when none is configured).
  std::string render_log_message(uint32_t observer, uint32_t action, const event& ev) const;

 private:
  observer_registry() = default;
  std::vector<std::unique_ptr<compiled_observer>> observers_;
  /// "EVENT_TYPE\x1f" + entity (either may be "*") -> observer indices.
  std::unordered_map<std::string, std::vector<uint32_t>> index_;
};

}  // namespace fraiseql
