#pragma once

// The control plane's command layer without CAF: reply envelopes, typed
// access to a command's JSON arguments, token comparison, and the metric
// filters behind `observerctl metrics`. Pure; unit-tested.

#include "runtime/core/token.hpp"

#include <boost/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace fraiseql {

/// `{"ok": true, "result": ...}` (messages/control.hpp).
std::string ok_reply(boost::json::value result);
/// `{"ok": false, "code": ..., "error": ..., ["result": ...]}`.
std::string error_reply(const std::string& code, const std::string& message,
                        boost::json::value result = nullptr);

/// A request problem the caller can fix (bad arguments): exit code 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Typed access to the JSON arguments of a command; a wrong type throws
/// usage_error naming the argument.
struct args_view {
  const boost::json::object& o;
  std::optional<std::string> str(const char* k) const;
  bool flag(const char* k) const;
  std::optional<int64_t> num(const char* k) const;
  int64_t required_num(const char* k) const;
};

/// The value of an unlabeled (or node-labelled) sample in a Prometheus text exposition.
std::optional<double> sample_value(const std::string& text, const std::string& name);

/// Lines of one metric family (name, or name_bucket/_sum/_count of a histogram).
std::string filter_metric(const std::string& text, const std::string& name);

/// Milliseconds since the epoch as ISO 8601 UTC with milliseconds.
std::string iso_time(int64_t ms);

}  // namespace fraiseql
