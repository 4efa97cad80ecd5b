#include "runtime/core/bus.hpp"

#include <cctype>

namespace fraiseql {

uint32_t partition_of(std::string_view entity_type, std::string_view entity_id,
                      uint32_t partitions) {
  if (partitions <= 1) return 0;
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  mix(entity_type);
  mix(std::string_view("\x1f", 1));
  mix(entity_id);
  return static_cast<uint32_t>(h % partitions);
}

std::string subject_token(std::string_view text) {
  if (text.empty()) return "_";
  std::string out(text);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '.' || c == '*' || c == '>' || std::isspace(u) != 0 || u < 0x20 || u == 0x7f) c = '_';
  }
  return out;
}

std::string event_subject(const std::string& prefix, const std::string& source, uint32_t partition,
                          std::string_view entity_type, std::string_view event_type) {
  std::string op = subject_token(event_type);
  for (char& c : op) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string s;
  s.reserve(prefix.size() + source.size() + entity_type.size() + op.size() + 16);
  s += prefix;
  s += '.';
  s += source;
  s += '.';
  s += std::to_string(partition);
  s += '.';
  s += subject_token(entity_type);
  s += '.';
  s += op;
  return s;
}

std::string partition_filter(const std::string& prefix, uint32_t partition) {
  return prefix + ".*." + std::to_string(partition) + ".>";
}

std::string stream_subjects(const std::string& prefix) {
  return prefix + ".>";
}

std::string event_msg_id(const std::string& source, const std::string& event_id) {
  return source + ":" + event_id;
}

std::string partition_consumer(const std::string& consumer, uint32_t partition) {
  return consumer + "_" + std::to_string(partition);
}

namespace {

std::string as_name(std::string_view db) {
  std::string out;
  for (char c : db) {
    const auto u = static_cast<unsigned char>(c);
    out += (std::isalnum(u) != 0 || c == '-' || c == '_') ? c : '_';
  }
  return out;
}

}  // namespace

std::string source_name_of_dsn(const std::string& dsn) {
  std::string_view s(dsn);
  const auto scheme = s.find("://");
  if (scheme != std::string_view::npos) {
    s.remove_prefix(scheme + 3);
    const auto slash = s.find('/');
    if (slash == std::string_view::npos) return "";
    s.remove_prefix(slash + 1);
    const auto end = s.find_first_of("?#");
    return as_name(s.substr(0, end));
  }
  // key=value form: dbname=NAME (unquoted; quoted values are rare for names)
  size_t at = 0;
  while ((at = s.find("dbname", at)) != std::string_view::npos) {
    if (at == 0 || std::isspace(static_cast<unsigned char>(s[at - 1])) != 0) {
      auto rest = s.substr(at + 6);
      while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front())) != 0)
        rest.remove_prefix(1);
      if (!rest.empty() && rest.front() == '=') {
        rest.remove_prefix(1);
        while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front())) != 0)
          rest.remove_prefix(1);
        if (!rest.empty() && rest.front() == '\'') {
          rest.remove_prefix(1);
          return as_name(rest.substr(0, rest.find('\'')));
        }
        size_t n = 0;
        while (n < rest.size() && std::isspace(static_cast<unsigned char>(rest[n])) == 0) ++n;
        return as_name(rest.substr(0, n));
      }
    }
    at += 6;
  }
  return "";
}

}  // namespace fraiseql
