#include "runtime/core/audit_query.hpp"

#include "runtime/core/audit.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>

namespace fraiseql {

namespace {

using node = audit_query_node;
using node_ptr = std::unique_ptr<audit_query_node>;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/// Characters that end a bare word in value position (':' does not: times
/// such as 2026-12-01T10:00:00Z are values).
bool ends_value(char c) {
  return is_space(c) || c == '(' || c == ')' || c == '"' || c == '[' || c == ']' || c == '{' ||
         c == '}';
}

bool field_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '@' ||
         c == '-';
}

bool needs_quotes(const std::string& v) {
  if (v.empty()) return true;
  if (v == "AND" || v == "OR" || v == "NOT" || v == "TO") return true;
  for (char c : v)
    if (ends_value(c) || c == '\\' || c == '*' || c == '|' || c == '&' || c == '!') return true;
  return v[0] == '-' || v[0] == '>' || v[0] == '<' || v[0] == ':';
}

/// A word ending in '*' whose rest prints unquoted: a prefix search ("ord*").
/// Otherwise the '*' is part of the text.
bool prefix_word(const std::string& w) {
  return w.size() > 1 && w.back() == '*' && !needs_quotes(w.substr(0, w.size() - 1));
}

class parser {
 public:
  explicit parser(const std::string& q) : q_(q) {}

  node_ptr parse() {
    skip();
    if (at_end()) throw audit_query_error(1, 1, "empty query");
    auto n = parse_or();
    skip();
    if (!at_end()) {
      if (q_[i_] == ')') fail(i_, 1, "unexpected ')' (no '(' is open)");
      fail(i_, 1, "unexpected '" + std::string(1, q_[i_]) + "'");
    }
    return n;
  }

 private:
  [[noreturn]] void fail(size_t pos, size_t len, const std::string& msg) const {
    throw audit_query_error(pos + 1, std::max<size_t>(len, 1), msg);
  }
  bool at_end() const { return i_ >= q_.size(); }
  void skip() {
    while (!at_end() && is_space(q_[i_])) ++i_;
  }
  /// The keyword `w` at the cursor, as a whole word.
  bool keyword(const char* w) const {
    const size_t n = std::char_traits<char>::length(w);
    if (q_.compare(i_, n, w) != 0) return false;
    const size_t e = i_ + n;
    return e >= q_.size() || is_space(q_[e]) || q_[e] == '(' || q_[e] == ')' || q_[e] == '"';
  }
  bool symbol(const char* s) const {
    return q_.compare(i_, std::char_traits<char>::length(s), s) == 0;
  }
  bool at_or() const { return keyword("OR") || symbol("||"); }
  bool at_and() const { return keyword("AND") || symbol("&&"); }

  static node_ptr combine(node::kind k, node_ptr a, node_ptr b) {
    if (a->k == k) {
      if (b->k == k)
        for (auto& c : b->children) a->children.push_back(std::move(c));
      else
        a->children.push_back(std::move(b));
      return a;
    }
    auto n = std::make_unique<node>();
    n->k = k;
    n->children.push_back(std::move(a));
    if (b->k == k)
      for (auto& c : b->children) n->children.push_back(std::move(c));
    else
      n->children.push_back(std::move(b));
    return n;
  }

  void expect_operand(const char* after, size_t at, size_t len) {
    skip();
    if (at_end()) fail(at, len, std::string("expected a term after ") + after);
    if (q_[i_] == ')') fail(i_, 1, std::string("expected a term after ") + after + ", got ')'");
    if (at_or() || at_and())
      fail(i_, keyword("AND") ? 3 : 2, std::string("expected a term after ") + after);
  }

  node_ptr parse_or() {
    auto left = parse_and();
    for (;;) {
      skip();
      if (!at_or()) return left;
      const size_t at = i_;
      const size_t len = 2;  // "OR" or "||"
      i_ += len;
      expect_operand("OR", at, len);
      left = combine(node::kind::or_, std::move(left), parse_and());
    }
  }

  node_ptr parse_and() {
    auto left = parse_unary();
    for (;;) {
      skip();
      if (at_end() || q_[i_] == ')' || at_or()) return left;
      if (at_and()) {
        const size_t at = i_;
        const size_t len = q_[i_] == '&' ? 2 : 3;
        i_ += len;
        expect_operand("AND", at, len);
      }
      left = combine(node::kind::and_, std::move(left), parse_unary());
    }
  }

  node_ptr parse_unary() {
    skip();
    if (at_end()) fail(q_.size(), 1, "expected a term");
    const size_t at = i_;
    if (keyword("NOT") || q_[i_] == '!' ||
        (q_[i_] == '-' && i_ + 1 < q_.size() && !is_space(q_[i_ + 1]))) {
      const size_t len = q_[i_] == 'N' ? 3 : 1;
      i_ += len;
      expect_operand(len == 3 ? "NOT" : q_[at] == '!' ? "'!'" : "'-'", at, len);
      auto n = std::make_unique<node>();
      n->k = node::kind::not_;
      n->column = at + 1;
      n->children.push_back(parse_unary());
      return n;
    }
    if (q_[i_] == '(') {
      ++i_;
      skip();
      if (!at_end() && q_[i_] == ')') fail(i_, 1, "empty parentheses");
      if (at_end()) fail(at, 1, "'(' is never closed");
      auto n = parse_or();
      skip();
      if (at_end() || q_[i_] != ')') fail(at, 1, "'(' is never closed");
      ++i_;
      return n;
    }
    if (q_[i_] == ')') fail(i_, 1, "unexpected ')' (no '(' is open)");
    if (at_and() || at_or()) {
      const size_t len = keyword("AND") ? 3 : 2;
      fail(i_, len, std::string(at_and() ? "AND" : "OR") + " needs a term before it");
    }
    return parse_term();
  }

  /// A quoted string at the cursor; returns its content.
  std::string quoted() {
    const size_t at = i_;
    ++i_;
    std::string out;
    while (!at_end() && q_[i_] != '"') {
      if (q_[i_] == '\\' && i_ + 1 < q_.size()) ++i_;
      out += q_[i_++];
    }
    if (at_end()) fail(at, 1, "unterminated quote");
    ++i_;
    return out;
  }

  std::string bare_value() {
    const size_t b = i_;
    while (!at_end() && !ends_value(q_[i_])) ++i_;
    return q_.substr(b, i_ - b);
  }

  node_ptr parse_term() {
    const size_t at = i_;
    auto n = std::make_unique<node>();
    n->column = at + 1;
    if (q_[i_] == '"') {
      n->k = node::kind::text;
      n->value = quoted();
      n->quoted = true;
      if (n->value.empty()) fail(at, 2, "empty phrase");
      n->length = i_ - at;
      return n;
    }
    if (q_[i_] == '[' || q_[i_] == '{' || q_[i_] == ']' || q_[i_] == '}')
      fail(i_, 1, "a range needs a field (e.g. timestamp:[now-1d TO now])");
    size_t j = i_;
    while (j < q_.size() && field_char(q_[j])) ++j;
    if (j < q_.size() && q_[j] == ':' && j > i_) {
      n->k = node::kind::term;
      n->field = q_.substr(i_, j - i_);
      i_ = j + 1;
      parse_value(*n, at);
      n->length = i_ - at;
      return n;
    }
    if (q_[i_] == ':') fail(i_, 1, "a ':' needs a field name before it");
    n->k = node::kind::text;
    n->value = bare_value();
    if (n->value.empty()) fail(i_, 1, "unexpected '" + std::string(1, q_[i_]) + "'");
    if (n->value == "*") fail(at, 1, "a lone '*' is not a term (leave it out)");
    if (prefix_word(n->value)) {
      n->value.pop_back();
      n->prefix = true;
    }
    n->length = i_ - at;
    return n;
  }

  void parse_value(node& n, size_t at) {
    if (at_end() || is_space(q_[i_]) || q_[i_] == ')')
      fail(at, i_ - at, "expected a value after '" + n.field + ":'");
    const char c = q_[i_];
    if (c == '"') {
      n.value = quoted();
      n.quoted = true;
      return;
    }
    if (c == '[' || c == '{') {
      const size_t open = i_;
      n.op = "range";
      n.low_inclusive = c == '[';
      ++i_;
      skip();
      n.low = bound(open);
      skip();
      if (!keyword("TO")) {
        if (at_end()) fail(open, 1, "range never closed: expected 'TO'");
        size_t e = i_;
        while (e < q_.size() && !is_space(q_[e]) && q_[e] != ']' && q_[e] != '}') ++e;
        fail(i_, e - i_, "expected 'TO' between the bounds of the range");
      }
      i_ += 2;
      skip();
      n.high = bound(open);
      skip();
      if (at_end() || (q_[i_] != ']' && q_[i_] != '}'))
        fail(at_end() ? open : i_, 1, "expected ']' or '}' to close the range");
      n.high_inclusive = q_[i_] == ']';
      ++i_;
      return;
    }
    if (c == '>' || c == '<') {
      n.op = std::string(1, c);
      ++i_;
      if (!at_end() && q_[i_] == '=') {
        n.op += '=';
        ++i_;
      }
      if (at_end() || (ends_value(q_[i_]) && q_[i_] != '"'))
        fail(at, i_ - at, "expected a value after '" + n.field + ":" + n.op + "'");
      if (q_[i_] == '"') {
        n.value = quoted();
        n.quoted = true;
      } else {
        n.value = bare_value();
      }
      return;
    }
    if (ends_value(c))
      fail(i_, 1, "unexpected '" + std::string(1, c) + "' after '" + n.field + ":'");
    n.value = bare_value();
    if (n.value == "*") {
      n.op = "exists";
      n.value.clear();
      return;
    }
    if (prefix_word(n.value)) {
      n.value.pop_back();
      n.prefix = true;
    }
  }

  std::string bound(size_t open) {
    if (at_end()) fail(open, 1, "range never closed");
    if (q_[i_] == '"') {
      auto v = quoted();
      if (v.empty()) fail(i_ - 2, 2, "empty range bound");
      return v;
    }
    const size_t b = i_;
    while (!at_end() && !is_space(q_[i_]) && q_[i_] != ']' && q_[i_] != '}') ++i_;
    if (i_ == b) fail(b, 1, "expected a range bound");
    return q_.substr(b, i_ - b);
  }

  const std::string& q_;
  size_t i_ = 0;
};

std::string quote(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string value_text(const std::string& v, bool quoted_in) {
  return quoted_in || needs_quotes(v) ? quote(v) : v;
}

std::string bound_text(const std::string& v) {
  if (v == "*") return v;
  bool plain = !v.empty() && v != "TO" && v[0] != '"';
  for (char c : v)
    if (is_space(c) || c == ']' || c == '}' || c == '"' || c == '\\') plain = false;
  return plain ? v : quote(v);
}

}  // namespace

std::unique_ptr<audit_query_node> parse_audit_query(const std::string& query) {
  return parser(query).parse();
}

std::string describe_query_error(const std::string& query, const audit_query_error& e) {
  std::string out = "column " + std::to_string(e.column) + ": " + e.what() + "\n  ";
  std::string line = query;
  for (auto& c : line)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  out += line + "\n  ";
  out += std::string(e.column > 0 ? e.column - 1 : 0, ' ');
  const size_t room = query.size() >= e.column ? query.size() - e.column + 1 : 1;
  out += std::string(std::max<size_t>(1, std::min(e.length, room)), '^');
  return out;
}

std::string to_string(const audit_query_node& n) {
  switch (n.k) {
    case node::kind::and_:
    case node::kind::or_: {
      std::string out;
      const char* sep = n.k == node::kind::and_ ? " AND " : " OR ";
      for (size_t i = 0; i < n.children.size(); ++i) {
        if (i > 0) out += sep;
        const auto& c = *n.children[i];
        const bool paren = c.k == node::kind::or_ || c.k == node::kind::and_;
        out += paren ? "(" + to_string(c) + ")" : to_string(c);
      }
      return out;
    }
    case node::kind::not_: {
      const auto& c = *n.children.at(0);
      const bool paren = c.k == node::kind::or_ || c.k == node::kind::and_;
      return "NOT " + (paren ? "(" + to_string(c) + ")" : to_string(c));
    }
    case node::kind::text:
      if (n.prefix) return value_text(n.value, n.quoted) + "*";
      return value_text(n.value, n.quoted);
    case node::kind::term:
      break;
  }
  std::string out = n.field + ":";
  if (n.op == "exists") return out + "*";
  if (n.op == "range")
    return out + (n.low_inclusive ? "[" : "{") + bound_text(n.low) + " TO " + bound_text(n.high) +
           (n.high_inclusive ? "]" : "}");
  if (n.op != "=") return out + n.op + value_text(n.value, n.quoted);
  if (n.prefix) return out + value_text(n.value, n.quoted) + "*";
  return out + value_text(n.value, n.quoted);
}

// --- compilation ---------------------------------------------------------------------

namespace {

const std::set<std::string> attempt_fields = {"action_type", "status",          "http_status",
                                              "attempt",     "action",          "action_index",
                                              "latency_ms",  "idempotency_key", "error"};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

bool uses_attempts(const node& n) {
  if (n.k == node::kind::term && attempt_fields.count(lower(n.field)) > 0) return true;
  return std::any_of(n.children.begin(), n.children.end(),
                     [](const node_ptr& c) { return uses_attempts(*c); });
}

bool is_number(const std::string& v) {
  static const std::regex re(R"(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)");
  return std::regex_match(v, re);
}

std::string like_escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

class compiler {
 public:
  explicit compiler(bool attempts) : attempts_(attempts) {}
  std::vector<std::string> params;
  /// In attempt mode: the condition reads a column of the events table
  /// (data, free text, tenant, user), so the join must come before the limit.
  bool needs_events = false;

  /// A column of the event: from the attempt row where it is copied there.
  std::string ev_col(const char* name) {
    if (!attempts_) return std::string("e.") + name;
    const std::string n = name;
    if (n == "entity_type" || n == "entity_id" || n == "event_kind" || n == "listener_id")
      return "a." + n;
    needs_events = true;
    return "e." + n;
  }

  std::string p(std::string v) {
    params.push_back(std::move(v));
    return "$" + std::to_string(params.size());
  }

  std::string compile(const node& n) {
    switch (n.k) {
      case node::kind::and_:
      case node::kind::or_: {
        std::string out = "(";
        for (size_t i = 0; i < n.children.size(); ++i) {
          if (i > 0) out += n.k == node::kind::and_ ? " AND " : " OR ";
          out += compile(*n.children[i]);
        }
        return out + ")";
      }
      case node::kind::not_:
        // coalesce: a comparison with a missing value (NULL) is "not matching".
        return "NOT coalesce(" + compile(*n.children.at(0)) + ", false)";
      case node::kind::text:
        return text(n);
      case node::kind::term:
        return term(n);
    }
    return "false";
  }

 private:
  [[noreturn]] static void fail(const node& n, const std::string& msg) {
    throw audit_query_error(n.column, n.length, msg);
  }

  std::string text(const node& n) {
    std::string q;
    if (n.prefix) {
      std::string lex = "'";
      for (char c : lower(n.value)) {
        if (c == '\'' || c == '\\') lex += '\\';
        lex += c;
      }
      q = "to_tsquery('simple', " + p(lex + "':*") + ")";
    } else if (n.quoted) {
      q = "phraseto_tsquery('simple', " + p(n.value) + ")";
    } else {
      q = "plainto_tsquery('simple', " + p(n.value) + ")";
    }
    if (!attempts_) return "e.tsv @@ " + q;
    needs_events = true;
    return "(e.tsv @@ " + q + " OR to_tsvector('simple', coalesce(a.error, '')) @@ " + q + ")";
  }

  /// A text column: equality, prefix, existence, comparisons and ranges.
  std::string text_col(const node& n, const std::string& col, const std::string& v) {
    if (n.op == "exists") return col + " IS NOT NULL";
    if (n.op == "range") {
      std::string out = "(true";
      if (n.low != "*") out += " AND " + col + (n.low_inclusive ? " >= " : " > ") + p(n.low);
      if (n.high != "*") out += " AND " + col + (n.high_inclusive ? " <= " : " < ") + p(n.high);
      return out + ")";
    }
    if (n.op != "=") return col + " " + n.op + " " + p(v);
    if (n.prefix) return col + " LIKE " + p(like_escape(v) + "%");
    return col + " = " + p(v);
  }

  std::string number(const node& n, const std::string& v) {
    if (!is_number(v)) fail(n, "'" + v + "' is not a number (field " + n.field + ")");
    return p(v) + "::numeric";
  }

  std::string num_col(const node& n, const std::string& col) {
    if (n.op == "exists") return col + " IS NOT NULL";
    if (n.prefix) fail(n, "field " + n.field + " is a number: no prefix ('*') search");
    if (n.op == "range") {
      std::string out = "(true";
      if (n.low != "*")
        out += " AND " + col + (n.low_inclusive ? " >= " : " > ") + number(n, n.low);
      if (n.high != "*")
        out += " AND " + col + (n.high_inclusive ? " <= " : " < ") + number(n, n.high);
      return out + ")";
    }
    return col + " " + n.op + " " + number(n, n.value);
  }

  /// now, now-1d, now+2h, ... or an ISO 8601 date / date-time, as SQL.
  std::string time_expr(const node& n, const std::string& v) {
    static const std::regex math(R"(now(([-+])([0-9]{1,6})([smhdwMy]))?)");
    static const std::regex iso(
        R"([0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[-+][0-9]{2}(:?[0-9]{2})?)?)?)");
    std::smatch m;
    if (std::regex_match(v, m, math)) {
      if (!m[1].matched) return "now()";
      static const std::pair<char, const char*> units[] = {
          {'s', "seconds"}, {'m', "minutes"}, {'h', "hours"}, {'d', "days"},
          {'w', "weeks"},   {'M', "months"},  {'y', "years"}};
      std::string unit;
      for (const auto& [c, name] : units)
        if (m[4].str()[0] == c) unit = name;
      return "(now() " + m[2].str() + " " + p(m[3].str() + " " + unit) + "::interval)";
    }
    if (std::regex_match(v, iso)) {
      if (v.size() == 10) return "(" + p(v) + "::date::timestamp AT TIME ZONE 'UTC')";
      return p(v) + "::timestamptz";
    }
    fail(n, "'" + v +
                "' is not a time (now, now-1d, now-12h, now-30m, an ISO 8601 date such as "
                "2026-12-01 or date-time such as 2026-12-01T10:00:00Z)");
  }

  std::string time_col(const node& n, const std::string& col) {
    if (n.op == "exists") return "true";
    if (n.prefix) fail(n, "field " + n.field + " is a time: no prefix ('*') search");
    if (n.op == "range") {
      std::string out = "(true";
      if (n.low != "*")
        out += " AND " + col + (n.low_inclusive ? " >= " : " > ") + time_expr(n, n.low);
      if (n.high != "*")
        out += " AND " + col + (n.high_inclusive ? " <= " : " < ") + time_expr(n, n.high);
      return out + ")";
    }
    if (n.op == "=" && n.value.size() == 10 && n.value[4] == '-') {
      const std::string d = p(n.value);
      return "(" + col + " >= (" + d + "::date::timestamp AT TIME ZONE 'UTC') AND " + col +
             " < ((" + d + "::date + 1)::timestamp AT TIME ZONE 'UTC'))";
    }
    return col + " " + n.op + " " + time_expr(n, n.value);
  }

  std::string choice(const node& n, const std::string& col, const std::string& v,
                     const std::vector<std::string>& valid) {
    if (n.op == "=" && !n.prefix && std::find(valid.begin(), valid.end(), v) == valid.end()) {
      std::string list;
      for (const auto& s : valid) list += (list.empty() ? "" : ", ") + s;
      fail(n, "'" + n.value + "' is not a valid " + n.field + " (one of " + list + ")");
    }
    return text_col(n, col, v);
  }

  static std::string pg_text_array(const std::vector<std::string>& path) {
    std::string out = "{";
    for (size_t i = 0; i < path.size(); ++i) {
      if (i > 0) out += ',';
      out += '"';
      for (char c : path[i]) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      out += '"';
    }
    return out + "}";
  }

  std::string data_field(const node& n) {
    std::string f = n.field;
    if (f.rfind("data.", 0) == 0) f = f.substr(5);
    std::vector<std::string> path;
    size_t b = 0;
    for (;;) {
      const size_t e = f.find('.', b);
      path.push_back(f.substr(b, e == std::string::npos ? std::string::npos : e - b));
      if (path.back().empty()) fail(n, "'" + n.field + "' is not a field path (empty segment)");
      if (e == std::string::npos) break;
      b = e + 1;
    }
    const std::string pa = pg_text_array(path);
    if (n.op == "exists") return "(e.data #> " + p(pa) + "::text[]) IS NOT NULL";
    if (n.prefix) return "(e.data #>> " + p(pa) + "::text[]) LIKE " + p(like_escape(n.value) + "%");
    if (n.op == "=") {
      // Containment (GIN jsonb_path_ops): {"a": {"b": value}}, as a string,
      // and as a number or boolean where the text reads as one.
      auto doc = [&](boost::json::value leaf) {
        for (auto it = path.rbegin(); it != path.rend(); ++it) {
          boost::json::object o;
          o[*it] = std::move(leaf);
          leaf = std::move(o);
        }
        return "e.data @> " + p(boost::json::serialize(leaf)) + "::jsonb";
      };
      std::string out = "(" + doc(boost::json::string(n.value));
      if (!n.quoted && is_number(n.value)) {
        try {
          out += " OR " + doc(boost::json::parse(n.value));
        } catch (const std::exception&) {
        }
      }
      if (!n.quoted && (n.value == "true" || n.value == "false"))
        out += " OR " + doc(boost::json::value(n.value == "true"));
      return out + ")";
    }
    // Comparisons: numeric when every bound is a number, else as text.
    const bool numeric =
        n.op == "range" ? (n.low == "*" || is_number(n.low)) && (n.high == "*" || is_number(n.high))
                        : is_number(n.value);
    const std::string pp = p(pa);
    const std::string col = numeric ? "(CASE WHEN jsonb_typeof(e.data #> " + pp +
                                          "::text[]) = 'number' THEN (e.data #>> " + pp +
                                          "::text[])::numeric END)"
                                    : "(e.data #>> " + pp + "::text[])";
    return numeric ? num_col(n, col) : text_col(n, col, n.value);
  }

  std::string term(const node& n) {
    const std::string f = lower(n.field);
    const std::string& v = n.value;
    if (f == "entity_type" || f == "entity") return text_col(n, ev_col("entity_type"), v);
    if (f == "entity_id") return text_col(n, ev_col("entity_id"), v);
    if (f == "event_type" || f == "type") {
      if (attempts_) {  // attempts copy the kind, which names the type one to one
        const std::vector<std::string> types = {"INSERT", "UPDATE", "DELETE", "CUSTOM"};
        if (n.op == "=" && !n.prefix &&
            std::find(types.begin(), types.end(), upper(v)) != types.end())
          return "a.event_kind = " + p(audit_event_kind(upper(v)));
        needs_events = true;
      }
      return choice(n, "e.event_type", upper(v), {"INSERT", "UPDATE", "DELETE", "CUSTOM"});
    }
    if (f == "event_kind" || f == "kind") {
      std::string k = lower(v);
      if (k == "insert") k = "created";
      if (k == "update") k = "updated";
      if (k == "delete") k = "deleted";
      if (k == "create") k = "created";
      return choice(n, ev_col("event_kind"), k, {"created", "updated", "deleted", "custom"});
    }
    if (f == "event_id" || f == "id") {
      static const std::regex uuid(
          "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
      if (n.op == "=" && !n.prefix && !std::regex_match(v, uuid))
        fail(n, "'" + v + "' is not an event id (a UUID)");
      const std::string col = attempts_ ? "a.event_id" : "e.event_id";
      if (n.prefix) return text_col(n, col + "::text", lower(v));
      return text_col(n, col, lower(v));
    }
    if (f == "listener" || f == "listener_id") return text_col(n, ev_col("listener_id"), v);
    if (f == "tenant_id" || f == "tenant") return text_col(n, ev_col("tenant_id"), v);
    if (f == "user_id" || f == "user") return text_col(n, ev_col("user_id"), v);
    if (f == "observer") {
      if (attempts_) return text_col(n, "a.observer_name", v);
      if (n.op == "exists") return "cardinality(e.observers) > 0";
      if (n.op != "=" || n.prefix)
        return "EXISTS (SELECT 1 FROM unnest(e.observers) o WHERE " + text_col(n, "o", v) + ")";
      return p(v) + " = ANY (e.observers)";
    }
    if (f == "timestamp" || f == "@timestamp" || f == "ts" || f == "time")
      return time_col(n, attempts_ ? "a.event_ts" : "e.ts");
    if (f == "action_type") return text_col(n, "a.action_type", v);
    if (f == "status") {
      std::string s = lower(v);
      if (s == "success" || s == "ok" || s == "delivered") s = "succeeded";
      if (s == "dead_lettered" || s == "dead-lettered" || s == "dlq") s = "failed";
      return choice(n, "a.status", s, {"succeeded", "retrying", "failed", "enqueued"});
    }
    if (f == "http_status") return num_col(n, "a.http_status");
    if (f == "attempt") return num_col(n, "a.attempt");
    if (f == "action" || f == "action_index") return num_col(n, "a.action_index");
    if (f == "latency_ms") return num_col(n, "a.latency_ms");
    if (f == "idempotency_key") return text_col(n, "a.idempotency_key", v);
    if (f == "error") {
      if (n.op == "exists") return "a.error IS NOT NULL";
      return "a.error ILIKE " + p("%" + like_escape(v) + "%");
    }
    if (attempts_) needs_events = true;
    return data_field(n);
  }

  bool attempts_;
};

const char* const ts_format = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

}  // namespace

audit_search_sql compile_audit_query(const std::string& query, uint32_t limit) {
  auto tree = parse_audit_query(query);
  audit_search_sql out;
  out.attempts = uses_attempts(*tree);
  compiler c(out.attempts);
  const std::string cond = c.compile(*tree);
  out.params = std::move(c.params);
  out.params.push_back(std::to_string(limit));
  const std::string lim = "$" + std::to_string(out.params.size()) + "::bigint";
  const std::string fmt = ts_format;
  if (!out.attempts) {
    out.sql =
        "SELECT coalesce(json_agg(h), '[]'::json)::text FROM ("
        "SELECT e.event_id, to_char(e.ts AT TIME ZONE 'UTC', " +
        fmt +
        ") AS timestamp,"
        " e.event_type, e.event_kind, e.entity_type, e.entity_id, e.listener_id, e.observers,"
        " e.actions, e.data"
        " FROM observer_audit_events e WHERE " +
        cond + " ORDER BY e.ts DESC LIMIT " + lim + ") h";
  } else {
    // Attempts, newest first. When the condition reads only the attempt row
    // (entity, kind and listener are copied there), the limit applies before
    // the join: the attempts' indexes stop early, and only the hits look up
    // their event.
    const std::string from =
        c.needs_events ? "observer_audit_attempts a LEFT JOIN observer_audit_events e"
                         " ON e.event_id = a.event_id AND e.ts = a.event_ts WHERE " +
                             cond + " ORDER BY a.ts DESC LIMIT " + lim
                       : "(SELECT * FROM observer_audit_attempts a WHERE " + cond +
                             " ORDER BY a.ts DESC LIMIT " + lim +
                             ") a LEFT JOIN observer_audit_events e"
                             " ON e.event_id = a.event_id AND e.ts = a.event_ts ORDER BY a.ts DESC";
    out.sql =
        "SELECT coalesce(json_agg(h), '[]'::json)::text FROM ("
        "SELECT a.event_id, to_char(a.event_ts AT TIME ZONE 'UTC', " +
        fmt +
        ") AS timestamp,"
        " e.event_type, a.event_kind, a.entity_type, a.entity_id, a.observer_name AS observer,"
        " a.action_index, a.action_type, a.attempt, a.status, a.http_status, a.error,"
        " a.latency_ms, a.idempotency_key,"
        " to_char(a.ts AT TIME ZONE 'UTC', " +
        fmt + ") AS attempt_at, e.data FROM " + from + ") h";
    out.events_joined_first = c.needs_events;
  }
  return out;
}

}  // namespace fraiseql
