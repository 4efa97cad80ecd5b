#pragma once

// The search language of `observerctl search` (docs/history.md, "Search"):
// Lucene-like query strings such as
//
//   entity_type:Order AND event_kind:created AND timestamp:[now-1d TO now]
//   entity_type:Product AND action_type:webhook AND status:failed
//   customer_org:acme-corp
//
// parsed into a tree and compiled into one parameterized SELECT over the
// audit tables (sql/0008_audit.sql): user values only ever travel as
// parameters, never inside the SQL text. Pure; no I/O.
//
// Grammar (AND binds tighter than OR; adjacent terms are ANDed):
//   query   := or EOF
//   or      := and (("OR" | "||") and)*
//   and     := unary (["AND" | "&&"] unary)*
//   unary   := ("NOT" | "!" | "-") unary | "(" or ")" | term
//   term    := FIELD ":" value | value                  (a bare value is free text)
//   value   := WORD | "quoted phrase" | range | (">" | ">=" | "<" | "<=") WORD
//   range   := ("[" | "{") bound "TO" bound ("]" | "}")   ([ ] inclusive, { } exclusive)
//   bound   := "*" | WORD | "quoted"
// Times: now, now-1d, now-12h, now-30m, now-45s, now-2w (also +), or an ISO 8601
// date / date-time; a bare date as a value means that whole day (UTC).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace fraiseql {

/// A malformed query: `column` (1-based) and `length` locate the offending token.
struct audit_query_error : std::runtime_error {
  audit_query_error(size_t column, size_t length, const std::string& message)
      : std::runtime_error(message), column(column), length(length) {}
  size_t column;
  size_t length;
};

/// "column N: message", the query, and a caret line under the offending token.
std::string describe_query_error(const std::string& query, const audit_query_error& e);

struct audit_query_node {
  enum class kind { and_, or_, not_, term, text };
  kind k = kind::term;
  std::vector<std::unique_ptr<audit_query_node>> children;
  /// term: the field as written (free text: empty).
  std::string field;
  /// term / text: the value; ranges use low/high.
  std::string value;
  bool quoted = false;
  bool prefix = false;  // WORD ending in '*' (the '*' is not in value)
  /// "=" (plain value), "range", ">", ">=", "<", "<=", "exists" (field:*).
  std::string op = "=";
  std::string low, high;  // range bounds ("*": open)
  bool low_inclusive = true, high_inclusive = true;
  size_t column = 0, length = 0;  // where the term is, for errors
};

/// Parses `query`; throws audit_query_error.
std::unique_ptr<audit_query_node> parse_audit_query(const std::string& query);

/// A normalized query string of the tree (parse(to_string(t)) == t).
std::string to_string(const audit_query_node& n);

/// A compiled search: SQL with $1..$n placeholders and their values.
struct audit_search_sql {
  std::string sql;
  std::vector<std::string> params;
  /// True when the query names an attempt field (action_type, status, ...):
  /// hits are attempts with their event; else hits are events.
  bool attempts = false;
  /// Attempts mode: the condition reads event columns, so every candidate
  /// attempt is joined to its event before the limit (slower on big tables).
  bool events_joined_first = false;
};

/// Compiles `query` into one statement returning a JSON array of at most
/// `limit` hits, newest first. Throws audit_query_error (unknown value of a
/// known field, malformed time or number).
audit_search_sql compile_audit_query(const std::string& query, uint32_t limit);

}  // namespace fraiseql
