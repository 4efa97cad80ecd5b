#include "actors/control/commands.hpp"

#include <cstdio>
#include <ctime>
#include <sstream>

namespace fraiseql {

namespace json = boost::json;

std::string ok_reply(json::value result) {
  return json::serialize(json::object{{"ok", true}, {"result", std::move(result)}});
}
std::string error_reply(const std::string& code, const std::string& message, json::value result) {
  json::object o{{"ok", false}, {"code", code}, {"error", message}};
  if (!result.is_null()) o["result"] = std::move(result);
  return json::serialize(o);
}

std::optional<std::string> args_view::str(const char* k) const {
  auto* v = o.if_contains(k);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_string()) throw usage_error(std::string(k) + " must be a string");
  return std::string(v->get_string());
}

bool args_view::flag(const char* k) const {
  auto* v = o.if_contains(k);
  if (v == nullptr || v->is_null()) return false;
  if (!v->is_bool()) throw usage_error(std::string(k) + " must be a boolean");
  return v->get_bool();
}

std::optional<int64_t> args_view::num(const char* k) const {
  auto* v = o.if_contains(k);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= INT64_MAX) return static_cast<int64_t>(v->get_uint64());
  throw usage_error(std::string(k) + " must be an integer");
}

int64_t args_view::required_num(const char* k) const {
  auto v = num(k);
  if (!v) throw usage_error(std::string("missing ") + k);
  return *v;
}

/// The value of an unlabeled sample in a Prometheus text exposition.
std::optional<double> sample_value(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() <= name.size() || line.compare(0, name.size(), name) != 0) continue;
    // `name value` or `name{labels} value` (node-level series carry listener_id).
    if (line[name.size()] == ' ') return std::stod(line.substr(name.size() + 1));
    if (line[name.size()] == '{') {
      auto close = line.find("} ", name.size());
      if (close != std::string::npos) return std::stod(line.substr(close + 2));
    }
  }
  return std::nullopt;
}

/// Lines of one metric family (name, or name_bucket/_sum/_count of a histogram).
std::string filter_metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line, out;
  auto family_of = [&](const std::string& l) {
    std::string s = l;
    if (s.rfind("# HELP ", 0) == 0 || s.rfind("# TYPE ", 0) == 0) s = s.substr(7);
    auto end = s.find_first_of(" {");
    return s.substr(0, end);
  };
  while (std::getline(in, line)) {
    const auto f = family_of(line);
    if (f == name || f == name + "_bucket" || f == name + "_sum" || f == name + "_count")
      out += line + "\n";
  }
  return out;
}

std::string iso_time(int64_t ms) {
  std::time_t t = ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

}  // namespace fraiseql
