// docs/configuration.md agrees with the descriptor tables of the fixed
// sections (runtime/config/descriptors.hpp): per section the same keys, types,
// defaults and bounds (where the doc states one), and the same FRAISEQL_*
// variables in the environment table. Runs from the repository root.

#include "runtime/config/descriptors.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using fraiseql::config_schema::env_form;
using fraiseql::config_schema::list_options;
using fraiseql::config_schema::option_info;
using fraiseql::config_schema::option_type;

const char* const doc_path = "docs/configuration.md";

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

/// The cells of a Markdown table row ("| a | b |" -> {"a", "b"}).
std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  bool in_code = false;
  for (size_t i = 1; i < line.size(); ++i) {  // skip the leading '|'
    const char c = line[i];
    if (c == '`') in_code = !in_code;
    if (c == '|' && !in_code) {
      out.push_back(trim(cell));
      cell.clear();
    } else {
      cell += c;
    }
  }
  return out;
}

/// Every `code span` of a cell, in order.
std::vector<std::string> code_spans(const std::string& cell) {
  std::vector<std::string> out;
  for (size_t b = cell.find('`'); b != std::string::npos; b = cell.find('`', b)) {
    const size_t e = cell.find('`', b + 1);
    if (e == std::string::npos) break;
    out.push_back(cell.substr(b + 1, e - b - 1));
    b = e + 1;
  }
  return out;
}

struct doc_row {
  std::string type, default_cell, allowed;
};

/// What the documentation says: per `[section]` its key rows, and the
/// environment table (variable -> the key it overrides and accepted values).
struct doc_model {
  std::map<std::string, std::map<std::string, doc_row>> sections;
  std::map<std::string, std::pair<std::string, std::string>> env;  // variable -> (key, accepted)
};

doc_model parse_doc(std::istream& in) {
  doc_model doc;
  std::string section;     // current "### `[name]`", or empty
  bool in_env = false;     // inside "## Environment variable overrides"
  bool keys_done = false;  // the section's first key table was read
  bool in_table = false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0 || line.rfind("### ", 0) == 0) {
      in_env = line.rfind("## Environment variable overrides", 0) == 0;
      section.clear();
      keys_done = in_table = false;
      static const std::regex header(R"(^### `\[([a-z_.]+)\]`\s*$)");  // single brackets only
      std::smatch m;
      if (std::regex_match(line, m, header)) {
        section = m[1];
        doc.sections[section];  // documented even without a table
      }
      continue;
    }
    if (line.rfind("|", 0) != 0) {
      if (in_table) keys_done = true;
      in_table = false;
      continue;
    }
    const auto row = cells(line);
    if (row.empty() || row[0].rfind("---", 0) == 0 || row[0] == "key" || row[0] == "variable") {
      in_table = true;
      continue;
    }
    in_table = true;
    const auto name = code_spans(row[0]);
    if (name.size() != 1) continue;
    if (!section.empty() && !keys_done && row.size() >= 4) {
      doc.sections[section][name[0]] = doc_row{row[1], row[2], row[3]};
    } else if (in_env && row.size() >= 3) {
      const auto key = code_spans(row[1]);
      doc.env[name[0]] = {key.size() == 1 ? key[0] : "", row[2]};
    }
  }
  return doc;
}

std::string type_word(option_type t) {
  switch (t) {
    case option_type::boolean:
      return "boolean";
    case option_type::u32:
      return "uint32";
    case option_type::number:
      return "number";
    case option_type::string:
      return "string";
    case option_type::choice:
      return "string";
    case option_type::strings:
      return "array of strings";
  }
  return "?";
}

/// The doc's type word in the descriptors' vocabulary.
std::string normalise_type(const std::string& doc_type) {
  if (doc_type == "bool") return "boolean";
  if (doc_type == "float") return "number";
  return doc_type;
}

/// The default as the descriptors write it: the first code span, or empty for
/// "—" (no default).
std::string doc_default(const std::string& cell) {
  if (cell.rfind("—", 0) == 0) return "";
  const auto spans = code_spans(cell);
  return spans.empty() ? cell : spans[0];
}

std::string bounds_text(uint64_t min, uint64_t max) {
  return max >= std::numeric_limits<uint32_t>::max()
             ? "≥ " + std::to_string(min)
             : std::to_string(min) + " – " + std::to_string(max);
}

std::string join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : ", ") + x;
  return out;
}

/// Compares the `allowed` cell with the option's bounds or choices, when the
/// cell states them ("1 – 1000", "≥ 1", "> 0 and ≤ 1", "`a`, `b`").
std::optional<std::string> check_allowed(const option_info& o, const std::string& allowed) {
  const auto& s = *o.spec;
  std::smatch m;
  static const std::regex range(R"(^(\d+) – (\d+)\b.*)");
  static const std::regex at_least(R"(^≥ (\d+)\s*$)");
  static const std::regex exclusive(R"(^> (\d+(?:\.\d+)?) and ≤ (\d+(?:\.\d+)?)\b.*)");
  if (s.type == option_type::u32) {
    std::string doc;
    if (std::regex_match(allowed, m, range))
      doc = std::string(m[1]) + " – " + std::string(m[2]);
    else if (std::regex_match(allowed, m, at_least))
      doc = "≥ " + std::string(m[1]);
    else
      return std::nullopt;  // no bound stated (e.g. "≥ `initial_delay_ms`")
    if (doc != bounds_text(s.min, s.max))
      return "bounds: doc " + doc + ", descriptors " + bounds_text(s.min, s.max);
  } else if (s.type == option_type::number) {
    std::string doc;
    if (std::regex_match(allowed, m, exclusive))
      doc = "> " + std::string(m[1]) + " and ≤ " + std::string(m[2]);
    else if (std::regex_match(allowed, m, range))
      doc = std::string(m[1]) + " – " + std::string(m[2]);
    else
      return std::nullopt;
    std::ostringstream code;
    code << (s.low_exclusive ? "> " : "") << s.low << (s.low_exclusive ? " and ≤ " : " – ")
         << s.high;
    if (doc != code.str()) return "bounds: doc " + doc + ", descriptors " + code.str();
  } else if (s.type == option_type::choice) {
    const auto spans = code_spans(allowed);
    const std::set<std::string> doc(spans.begin(), spans.end());
    const std::set<std::string> code(s.choices.begin(), s.choices.end());
    if (doc != code) return "choices: doc {" + join(doc) + "}, descriptors {" + join(code) + "}";
  }
  return std::nullopt;
}

/// "integer 1 – 1000" in the environment table.
std::optional<std::string> check_env_bounds(const option_info& o, const std::string& accepted) {
  static const std::regex integer(R"(^integer (\d+) – (\d+)\b.*)");
  std::smatch m;
  if (o.spec->type != option_type::u32 || !std::regex_match(accepted, m, integer))
    return std::nullopt;
  const std::string doc = std::string(m[1]) + " – " + std::string(m[2]);
  if (doc == bounds_text(o.spec->min, o.spec->max)) return std::nullopt;
  return "bounds: doc " + doc + ", descriptors " + bounds_text(o.spec->min, o.spec->max);
}

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("docs/configuration.md agrees with the option descriptors") {
    std::ifstream in(doc_path);
    REQUIRE_MESSAGE(in.good(), "cannot open " << doc_path << " (run from the repository root)");
    const doc_model doc = parse_doc(in);
    const std::vector<option_info> options = list_options();
    REQUIRE(options.size() > 50);
    REQUIRE_MESSAGE(doc.env.size() >= 20,
                    "the environment table of " << doc_path << " was not found");

    std::map<std::string, std::set<std::string>> described;  // section -> keys
    std::map<std::string, std::set<std::string>> vars;       // "section.key" -> its variables
    for (const auto& o : options) {
      described[o.section].insert(std::string(o.spec->key));
      const std::string full = o.section + "." + std::string(o.spec->key);
      if (o.spec->env != nullptr) vars[full].insert(o.spec->env);
      if (o.spec->env_alias != nullptr) vars[full].insert(o.spec->env_alias);
    }

    // Sections, both ways.
    for (const auto& [name, keys] : described) {
      if (doc.sections.count(name) == 0)
        FAIL_CHECK("[" << name << "]: described, but " << doc_path << " has no '### `[" << name
                       << "]`'");
    }
    for (const auto& [name, rows] : doc.sections) {
      if (described.count(name) == 0)
        FAIL_CHECK("[" << name << "]: documented, but no descriptor table has it");
    }

    // Keys, types, defaults, bounds.
    for (const auto& o : options) {
      const std::string key(o.spec->key);
      const auto section = doc.sections.find(o.section);
      if (section == doc.sections.end()) continue;  // reported above
      const auto row = section->second.find(key);
      if (row == section->second.end()) {
        FAIL_CHECK("[" << o.section << "] " << key << ": described (default " << o.default_text
                       << "), but the doc's table has no row for it");
        continue;
      }
      const doc_row& r = row->second;
      if (normalise_type(r.type) != type_word(o.spec->type))
        FAIL_CHECK("[" << o.section << "] " << key << ": type: doc '" << r.type
                       << "', descriptors '" << type_word(o.spec->type) << "'");
      if (doc_default(r.default_cell) != o.default_text)
        FAIL_CHECK("[" << o.section << "] " << key << ": default: doc '" << r.default_cell
                       << "', descriptors '" << o.default_text << "'");
      if (auto why = check_allowed(o, r.allowed))
        FAIL_CHECK("[" << o.section << "] " << key << ": " << *why);
    }
    for (const auto& [name, rows] : doc.sections) {
      const auto keys = described.find(name);
      if (keys == described.end()) continue;
      for (const auto& [key, row] : rows)
        if (keys->second.count(key) == 0)
          FAIL_CHECK("[" << name << "] " << key << ": documented (default '" << row.default_cell
                         << "'), but no descriptor has it");
    }

    // Environment variables, both ways.
    for (const auto& o : options) {
      const std::string full = o.section + "." + std::string(o.spec->key);
      for (const char* var : {o.spec->env, o.spec->env_alias}) {
        if (var == nullptr) continue;
        const auto row = doc.env.find(var);
        if (row == doc.env.end()) {
          FAIL_CHECK("[" << o.section << "] " << o.spec->key << ": variable " << std::string(var)
                         << " is in the descriptors but not in the doc's environment table");
        } else if (row->second.first != full) {
          FAIL_CHECK("[" << o.section << "] " << o.spec->key << ": variable " << std::string(var)
                         << " overrides '" << row->second.first << "' in the doc, '" << full
                         << "' in the descriptors");
        } else if (auto why = check_env_bounds(o, row->second.second)) {
          FAIL_CHECK("[" << o.section << "] " << o.spec->key << ": variable " << std::string(var)
                         << ": " << *why);
        }
      }
    }
    for (const auto& [var, row] : doc.env) {
      const std::string& full = row.first;
      const size_t dot = full.rfind('.');
      if (dot == std::string::npos || described.count(full.substr(0, dot)) == 0)
        continue;  // FRAISEQL_NATS_URL
      const auto v = vars.find(full);
      if (v == vars.end() || v->second.count(var) == 0)
        FAIL_CHECK("[" << full.substr(0, dot) << "] " << full.substr(dot + 1)
                       << ": the doc lists variable " << var << ", the descriptors have {"
                       << (v == vars.end() ? "" : join(v->second)) << "}");
    }
  }

  TEST_CASE("descriptor defaults are the model's") {
    // The defaults the docs check come from default-constructed structs.
    std::map<std::string, std::string> defaults;
    for (const auto& o : list_options())
      defaults[o.section + "." + std::string(o.spec->key)] = o.default_text;
    CHECK(defaults["listener.batch_size"] == "1000");
    CHECK(defaults["listener.listener_id"] == "\"default\"");
    CHECK(defaults["transport.run_executors"] == "true");
    CHECK(defaults["circuit_breaker.failure_threshold"] == "0.5");
    CHECK(defaults["redis.url"] == "");
    CHECK(defaults["observers.retry.backoff_strategy"] == "\"exponential\"");
    for (const auto& o : list_options())
      if (o.spec->env_kind == env_form::none) CHECK_MESSAGE(o.spec->env == nullptr, o.spec->key);
  }
}
