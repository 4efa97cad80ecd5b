// Lexer and Pratt parser for JMESPath.
//
// The lexer is lazy (tokens are produced on demand, lexical errors become error tokens that
// only fail when the parser looks at them) so that an expression can be parsed out of a
// template where it is followed by arbitrary text after its closing "}}".

#include "runtime/expr/detail/ast.hpp"
#include "runtime/expr/detail/json_util.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

namespace fraiseql::expr::detail {

namespace {

enum class tok : std::uint8_t {
  eof,
  error,
  unquoted,
  quoted,
  number,
  literal,
  raw_string,
  dot,
  star,
  lbracket,
  rbracket,
  flatten,  // []
  filter,   // [?
  lbrace,
  rbrace,
  lparen,
  rparen,
  comma,
  colon,
  at,
  amp,
  pipe,
  or_,
  and_,
  not_,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
};

const char* describe(tok t) noexcept {
  switch (t) {
    case tok::eof:
      return "end of expression";
    case tok::error:
      return "invalid token";
    case tok::unquoted:
      return "identifier";
    case tok::quoted:
      return "quoted identifier";
    case tok::number:
      return "number";
    case tok::literal:
      return "JSON literal";
    case tok::raw_string:
      return "raw string";
    case tok::dot:
      return "'.'";
    case tok::star:
      return "'*'";
    case tok::lbracket:
      return "'['";
    case tok::rbracket:
      return "']'";
    case tok::flatten:
      return "'[]'";
    case tok::filter:
      return "'[?'";
    case tok::lbrace:
      return "'{'";
    case tok::rbrace:
      return "'}'";
    case tok::lparen:
      return "'('";
    case tok::rparen:
      return "')'";
    case tok::comma:
      return "','";
    case tok::colon:
      return "':'";
    case tok::at:
      return "'@'";
    case tok::amp:
      return "'&'";
    case tok::pipe:
      return "'|'";
    case tok::or_:
      return "'||'";
    case tok::and_:
      return "'&&'";
    case tok::not_:
      return "'!'";
    case tok::eq:
      return "'=='";
    case tok::ne:
      return "'!='";
    case tok::lt:
      return "'<'";
    case tok::le:
      return "'<='";
    case tok::gt:
      return "'>'";
    case tok::ge:
      return "'>='";
  }
  return "token";
}

// Left binding powers. Tokens below `projection_stop` end the right side of a projection.
constexpr int projection_stop = 10;

int lbp(tok t) noexcept {
  switch (t) {
    case tok::pipe:
      return 1;
    case tok::or_:
      return 2;
    case tok::and_:
      return 3;
    case tok::eq:
    case tok::ne:
    case tok::lt:
    case tok::le:
    case tok::gt:
    case tok::ge:
      return 5;
    case tok::flatten:
      return 9;
    case tok::star:
      return 20;
    case tok::filter:
      return 21;
    case tok::dot:
      return 40;
    case tok::not_:
      return 45;
    case tok::lbrace:
      return 50;
    case tok::lbracket:
      return 55;
    case tok::lparen:
      return 60;
    default:
      return 0;
  }
}

struct token {
  tok type = tok::eof;
  std::size_t pos = 0;
  std::string text;  // identifier, raw string, error message
  boost::json::value json;
  std::int64_t number = 0;
};

constexpr std::int64_t number_clamp = std::int64_t{1} << 62;

boost::json::parse_options literal_parse_options() {
  boost::json::parse_options o;
  o.max_depth = max_nesting_depth;
  return o;
}

class lexer {
 public:
  lexer(std::string_view src, std::size_t start) : s_(src), i_(start) {}

  token next() {
    while (i_ < s_.size() && is_space(s_[i_])) ++i_;
    token t;
    t.pos = i_;
    if (i_ >= s_.size()) return t;
    const char c = s_[i_];
    if (is_ident_start(c)) {
      std::size_t j = i_ + 1;
      while (j < s_.size() && is_ident_char(s_[j])) ++j;
      t.type = tok::unquoted;
      t.text.assign(s_.substr(i_, j - i_));
      i_ = j;
      return t;
    }
    if ((c >= '0' && c <= '9') || c == '-') return lex_number(t);
    switch (c) {
      case '"':
        return lex_quoted(t);
      case '\'':
        return lex_raw(t);
      case '`':
        return lex_literal(t);
      case '.':
        return single(t, tok::dot);
      case '*':
        return single(t, tok::star);
      case ']':
        return single(t, tok::rbracket);
      case '{':
        return single(t, tok::lbrace);
      case '}':
        return single(t, tok::rbrace);
      case '(':
        return single(t, tok::lparen);
      case ')':
        return single(t, tok::rparen);
      case ',':
        return single(t, tok::comma);
      case ':':
        return single(t, tok::colon);
      case '@':
        return single(t, tok::at);
      case '[':
        if (peek(1) == ']') return pair(t, tok::flatten);
        if (peek(1) == '?') return pair(t, tok::filter);
        return single(t, tok::lbracket);
      case '&':
        return peek(1) == '&' ? pair(t, tok::and_) : single(t, tok::amp);
      case '|':
        return peek(1) == '|' ? pair(t, tok::or_) : single(t, tok::pipe);
      case '!':
        return peek(1) == '=' ? pair(t, tok::ne) : single(t, tok::not_);
      case '<':
        return peek(1) == '=' ? pair(t, tok::le) : single(t, tok::lt);
      case '>':
        return peek(1) == '=' ? pair(t, tok::ge) : single(t, tok::gt);
      case '=':
        if (peek(1) == '=') return pair(t, tok::eq);
        return error(t, "'=' is not an operator (use '==')", i_ + 1);
      default:
        break;
    }
    std::string msg = "unexpected character ";
    if (static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7F) {
      msg += '\'';
      msg += c;
      msg += '\'';
    } else {
      msg += "(byte " + std::to_string(static_cast<unsigned char>(c)) + ")";
    }
    return error(t, std::move(msg), i_ + 1);
  }

 private:
  static bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  static bool is_ident_start(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  }
  static bool is_ident_char(char c) noexcept { return is_ident_start(c) || (c >= '0' && c <= '9'); }

  char peek(std::size_t k) const noexcept { return i_ + k < s_.size() ? s_[i_ + k] : '\0'; }

  token& single(token& t, tok type) {
    t.type = type;
    i_ += 1;
    return t;
  }
  token& pair(token& t, tok type) {
    t.type = type;
    i_ += 2;
    return t;
  }
  token& error(token& t, std::string msg, std::size_t resume) {
    t.type = tok::error;
    t.text = std::move(msg);
    i_ = resume;
    return t;
  }

  token lex_number(token& t) {
    std::size_t j = i_;
    bool negative = false;
    if (s_[j] == '-') {
      negative = true;
      ++j;
    }
    if (j >= s_.size() || s_[j] < '0' || s_[j] > '9') {
      return error(t, "'-' must be followed by digits", j);
    }
    std::int64_t v = 0;
    while (j < s_.size() && s_[j] >= '0' && s_[j] <= '9') {
      // Saturate: indices beyond 2^62 behave like 2^62 (out of range of any array).
      v = v <= (number_clamp - 9) / 10 ? v * 10 + (s_[j] - '0') : number_clamp;
      ++j;
    }
    t.type = tok::number;
    t.number = negative ? -v : v;
    i_ = j;
    return t;
  }

  token lex_quoted(token& t) {
    std::size_t j = i_ + 1;
    while (j < s_.size() && s_[j] != '"') j += s_[j] == '\\' ? 2 : 1;
    if (j >= s_.size()) return error(t, "unterminated quoted identifier", s_.size());
    const std::string_view lexeme = s_.substr(i_, j + 1 - i_);
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(lexeme, ec);
    if (ec || !v.is_string()) return error(t, "invalid quoted identifier (bad escape?)", j + 1);
    t.type = tok::quoted;
    t.text.assign(v.get_string().data(), v.get_string().size());
    i_ = j + 1;
    return t;
  }

  token lex_raw(token& t) {
    std::size_t j = i_ + 1;
    std::string out;
    while (j < s_.size() && s_[j] != '\'') {
      if (s_[j] == '\\' && j + 1 < s_.size()) {
        if (s_[j + 1] != '\'') out += '\\';
        out += s_[j + 1];
        j += 2;
      } else {
        out += s_[j];
        ++j;
      }
    }
    if (j >= s_.size()) return error(t, "unterminated raw string", s_.size());
    t.type = tok::raw_string;
    t.text = std::move(out);
    i_ = j + 1;
    return t;
  }

  token lex_literal(token& t) {
    std::size_t j = i_ + 1;
    std::string body;
    while (j < s_.size() && s_[j] != '`') {
      if (s_[j] == '\\' && j + 1 < s_.size()) {
        if (s_[j + 1] != '`') body += '\\';
        body += s_[j + 1];
        j += 2;
      } else {
        body += s_[j];
        ++j;
      }
    }
    if (j >= s_.size()) return error(t, "unterminated JSON literal", s_.size());
    i_ = j + 1;
    std::string_view trimmed = body;
    while (!trimmed.empty() && is_space(trimmed.front())) trimmed.remove_prefix(1);
    while (!trimmed.empty() && is_space(trimmed.back())) trimmed.remove_suffix(1);
    if (trimmed.empty()) return error(t, "empty JSON literal", i_);
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(trimmed, ec, {}, literal_parse_options());
    if (ec) {
      if (ec == boost::json::error::too_deep) {
        return error(t, "JSON literal nested too deeply", i_);
      }
      // Legacy (deprecated) literals: `foo` is the string "foo".
      std::string quoted = "\"";
      std::string_view rest = body;
      while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
      quoted.append(rest);
      quoted += '"';
      boost::system::error_code ec2;
      v = boost::json::parse(quoted, ec2);
      if (ec2) return error(t, "invalid JSON literal", i_);
    }
    t.type = tok::literal;
    t.json = std::move(v);
    return t;
  }

  std::string_view s_;
  std::size_t i_;
};

class parser {
 public:
  parser(std::string_view src, std::size_t start, program& prog)
      : src_(src), lx_(src, start), prog_(prog) {
    cur_ = lx_.next();
  }

  const node* parse_all() {
    const node* n = expression(0);
    if (cur_.type != tok::eof) unexpected(cur_, "expected end of expression");
    check_semantic();
    return n;
  }

  const node* parse_embedded(std::size_t& close) {
    if (cur_.type == tok::rbrace && next_char_is_brace(cur_.pos)) {
      throw parse_failure{error_kind::syntax, "empty template expression", cur_.pos};
    }
    const node* n = expression(0);
    if (cur_.type != tok::rbrace || !next_char_is_brace(cur_.pos)) {
      unexpected(cur_, "expected '}}' to close the template expression");
    }
    close = cur_.pos;
    check_semantic();
    return n;
  }

 private:
  struct depth_guard {
    explicit depth_guard(parser& p) : p_(p) {
      if (++p_.depth_ > max_nesting_depth) {
        throw parse_failure{error_kind::depth, "expression nested too deeply", p_.cur_.pos};
      }
    }
    ~depth_guard() { --p_.depth_; }
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;
    parser& p_;
  };

  bool next_char_is_brace(std::size_t pos) const {
    return pos + 1 < src_.size() && src_[pos + 1] == '}';
  }

  void check_semantic() {
    if (semantic_) throw std::move(*semantic_);
  }

  void semantic(error_kind kind, std::string msg, std::size_t pos) {
    if (!semantic_) semantic_ = parse_failure{kind, std::move(msg), pos};
  }

  [[noreturn, gnu::noinline, gnu::cold]] void unexpected(const token& t, std::string_view what) {
    if (t.type == tok::error) throw parse_failure{error_kind::syntax, t.text, t.pos};
    std::string msg(what);
    msg += ", found ";
    msg += describe(t.type);
    if (t.type == tok::unquoted || t.type == tok::quoted) msg += " '" + t.text + "'";
    throw parse_failure{error_kind::syntax, std::move(msg), t.pos};
  }

  const token& peek2() {
    if (!next_) next_ = lx_.next();
    return *next_;
  }

  token advance() {
    token t = std::move(cur_);
    if (next_) {
      cur_ = std::move(*next_);
      next_.reset();
    } else {
      cur_ = lx_.next();
    }
    return t;
  }

  void expect(tok type, std::string_view what) {
    if (cur_.type != type) unexpected(cur_, what);
    advance();
  }

  // ---- node construction ----

  node& make(node_kind kind, std::size_t pos) {
    node& n = prog_.nodes.emplace_back();
    n.kind = kind;
    n.pos = pos;
    return n;
  }

  const node* finish(node& n) {
    std::size_t d = 0;
    auto take = [&d](const node* c) {
      if (c) d = std::max<std::size_t>(d, c->depth);
    };
    take(n.lhs);
    take(n.rhs);
    take(n.cond);
    for (const node* c : n.items) take(c);
    if (d + 1 > max_nesting_depth) {
      throw parse_failure{error_kind::depth, "expression nested too deeply", n.pos};
    }
    n.depth = static_cast<std::uint16_t>(d + 1);
    return &n;
  }

  const node* current(std::size_t pos) { return finish(make(node_kind::current, pos)); }

  const node* binary(node_kind kind, const node* lhs, const node* rhs, std::size_t pos) {
    node& n = make(kind, pos);
    n.lhs = lhs;
    n.rhs = rhs;
    return finish(n);
  }

  const node* field(std::string name, std::size_t pos) {
    node& n = make(node_kind::field, pos);
    n.event_alias = name == "event";
    n.name = std::move(name);
    return finish(n);
  }

  // lhs . rhs, merging chains of plain fields into one field_path node.
  const node* subexpr(const node* lhs, const node* rhs, std::size_t pos) {
    if (rhs->kind == node_kind::field &&
        (lhs->kind == node_kind::field || lhs->kind == node_kind::field_path)) {
      node& n = make(node_kind::field_path, lhs->pos);
      if (lhs->kind == node_kind::field) {
        n.names.push_back(lhs->name);
      } else {
        n.names = lhs->names;
      }
      n.names.push_back(rhs->name);
      n.event_alias = false;
      for (const auto& nm : n.names) n.event_alias = n.event_alias || nm == "event";
      return finish(n);
    }
    return binary(node_kind::subexpr, lhs, rhs, pos);
  }

  // ---- grammar ----

  const node* expression(int rbp) {
    depth_guard guard(*this);
    token t = advance();
    const node* left = nud(t);
    while (rbp < lbp(cur_.type)) {
      token op = advance();
      left = led(op, left);
    }
    return left;
  }

  [[gnu::noinline]] const node* nud(token& t) {
    switch (t.type) {
      case tok::literal: {
        node& n = make(node_kind::literal, t.pos);
        n.literal = std::move(t.json);
        return finish(n);
      }
      case tok::raw_string: {
        node& n = make(node_kind::literal, t.pos);
        n.literal = boost::json::value(t.text);
        return finish(n);
      }
      case tok::unquoted:
        if (cur_.type == tok::lparen) {
          advance();
          return function_call(t);
        }
        return field(std::move(t.text), t.pos);
      case tok::quoted:
        if (cur_.type == tok::lparen) {
          throw parse_failure{error_kind::syntax, "a function name cannot be a quoted identifier",
                              t.pos};
        }
        return field(std::move(t.text), t.pos);
      case tok::star: {
        const node* rhs =
            cur_.type == tok::rbracket ? current(t.pos) : projection_rhs(lbp(tok::star));
        return binary(node_kind::value_projection, current(t.pos), rhs, t.pos);
      }
      case tok::filter:
        return filter(current(t.pos), t.pos);
      case tok::lbrace:
        return multi_hash(t.pos);
      case tok::lparen: {
        const node* inner = expression(0);
        expect(tok::rparen, "expected ')'");
        return inner;
      }
      case tok::flatten: {
        const node* flat = binary(node_kind::flatten, current(t.pos), nullptr, t.pos);
        return binary(node_kind::list_projection, flat, projection_rhs(lbp(tok::flatten)), t.pos);
      }
      case tok::not_: {
        const node* operand = expression(lbp(tok::not_));
        return binary(node_kind::not_, operand, nullptr, t.pos);
      }
      case tok::at:
        return current(t.pos);
      case tok::lbracket:
        if (cur_.type == tok::number || cur_.type == tok::colon) {
          return index_or_slice(current(t.pos), t.pos);
        }
        if (cur_.type == tok::star && peek2().type == tok::rbracket) {
          advance();
          advance();
          return binary(node_kind::list_projection, current(t.pos), projection_rhs(lbp(tok::star)),
                        t.pos);
        }
        return multi_list(t.pos);
      case tok::amp:
        throw parse_failure{error_kind::syntax,
                            "an expression reference '&' is only allowed as a function argument",
                            t.pos};
      default:
        unexpected(t, "expected an expression");
    }
  }

  [[gnu::noinline]] const node* led(token& t, const node* left) {
    switch (t.type) {
      case tok::dot:
        if (cur_.type == tok::star) {
          advance();
          return binary(node_kind::value_projection, left, projection_rhs(lbp(tok::dot)), t.pos);
        }
        return subexpr(left, dot_rhs(lbp(tok::dot)), t.pos);
      case tok::pipe:
        return binary(node_kind::pipe, left, expression(lbp(tok::pipe)), t.pos);
      case tok::or_:
        return binary(node_kind::or_, left, expression(lbp(tok::or_)), t.pos);
      case tok::and_:
        return binary(node_kind::and_, left, expression(lbp(tok::and_)), t.pos);
      case tok::eq:
      case tok::ne:
      case tok::lt:
      case tok::le:
      case tok::gt:
      case tok::ge: {
        const node* rhs = expression(lbp(t.type));
        node& n = make(node_kind::compare, t.pos);
        n.lhs = left;
        n.rhs = rhs;
        n.op = t.type == tok::eq   ? compare_op::eq
               : t.type == tok::ne ? compare_op::ne
               : t.type == tok::lt ? compare_op::lt
               : t.type == tok::le ? compare_op::le
               : t.type == tok::gt ? compare_op::gt
                                   : compare_op::ge;
        return finish(n);
      }
      case tok::lbracket:
        if (cur_.type == tok::number || cur_.type == tok::colon) return index_or_slice(left, t.pos);
        expect(tok::star, "expected a number, ':' or '*' after '['");
        expect(tok::rbracket, "expected ']'");
        return binary(node_kind::list_projection, left, projection_rhs(lbp(tok::star)), t.pos);
      case tok::filter:
        return filter(left, t.pos);
      case tok::flatten: {
        const node* flat = binary(node_kind::flatten, left, nullptr, t.pos);
        return binary(node_kind::list_projection, flat, projection_rhs(lbp(tok::flatten)), t.pos);
      }
      case tok::lparen:
        throw parse_failure{error_kind::syntax, "'(' must follow an unquoted function name", t.pos};
      default:
        unexpected(t, "unexpected token after expression");
    }
  }

  const node* projection_rhs(int bp) {
    if (lbp(cur_.type) < projection_stop) return current(cur_.pos);
    switch (cur_.type) {
      case tok::lbracket:
      case tok::filter:
        return expression(bp);
      case tok::dot:
        advance();
        return dot_rhs(bp);
      default:
        unexpected(cur_, "expected '.', '[' or '[?' after a projection");
    }
  }

  const node* dot_rhs(int bp) {
    switch (cur_.type) {
      case tok::unquoted:
      case tok::quoted:
      case tok::star:
        return expression(bp);
      case tok::lbracket: {
        const std::size_t pos = advance().pos;
        return multi_list(pos);
      }
      case tok::lbrace: {
        const std::size_t pos = advance().pos;
        return multi_hash(pos);
      }
      default:
        unexpected(cur_, "expected an identifier, '*', '[' or '{' after '.'");
    }
  }

  [[gnu::noinline]] const node* filter(const node* left, std::size_t pos) {
    const node* cond = expression(0);
    expect(tok::rbracket, "expected ']' to close the filter");
    const node* rhs = projection_rhs(lbp(tok::filter));
    node& n = make(node_kind::filter_projection, pos);
    n.lhs = left;
    n.rhs = rhs;
    n.cond = cond;
    return finish(n);
  }

  // After '[' when the next token is a number or ':'.
  [[gnu::noinline]] const node* index_or_slice(const node* left, std::size_t pos) {
    if (cur_.type == tok::number && peek2().type != tok::colon) {
      node& n = make(node_kind::index, pos);
      n.lhs = left;
      n.index = advance().number;
      expect(tok::rbracket, "expected ']' after the index");
      return finish(n);
    }
    std::optional<std::int64_t> parts[3];
    int part = 0;
    while (cur_.type != tok::rbracket) {
      if (cur_.type == tok::colon) {
        if (++part == 3) unexpected(cur_, "too many ':' in slice");
        advance();
      } else if (cur_.type == tok::number && !parts[part]) {
        parts[part] = advance().number;
      } else {
        unexpected(cur_, "expected a number, ':' or ']' in slice");
      }
    }
    advance();
    node& n = make(node_kind::slice, pos);
    n.lhs = left;
    n.has_start = parts[0].has_value();
    n.has_stop = parts[1].has_value();
    n.start = parts[0].value_or(0);
    n.stop = parts[1].value_or(0);
    n.step = parts[2].value_or(1);
    if (n.step == 0) semantic(error_kind::invalid_value, "slice step cannot be 0", pos);
    const node* slice = finish(n);
    return binary(node_kind::list_projection, slice, projection_rhs(lbp(tok::star)), pos);
  }

  // After '['.
  [[gnu::noinline]] const node* multi_list(std::size_t pos) {
    node& n = make(node_kind::multi_list, pos);
    for (;;) {
      n.items.push_back(expression(0));
      if (cur_.type == tok::comma) {
        advance();
        continue;
      }
      expect(tok::rbracket, "expected ',' or ']' in multi-select list");
      break;
    }
    return finish(n);
  }

  // After '{'.
  [[gnu::noinline]] const node* multi_hash(std::size_t pos) {
    node& n = make(node_kind::multi_hash, pos);
    for (;;) {
      if (cur_.type != tok::unquoted && cur_.type != tok::quoted) {
        unexpected(cur_, "expected a key (identifier) in multi-select hash");
      }
      n.names.push_back(advance().text);
      expect(tok::colon, "expected ':' after the key in multi-select hash");
      n.items.push_back(expression(0));
      if (cur_.type == tok::comma) {
        advance();
        continue;
      }
      expect(tok::rbrace, "expected ',' or '}' in multi-select hash");
      break;
    }
    return finish(n);
  }

  // After `name(`.
  [[gnu::noinline]] const node* function_call(token& name) {
    node& n = make(node_kind::function, name.pos);
    if (cur_.type == tok::rparen) {
      advance();
    } else {
      for (;;) {
        if (cur_.type == tok::amp) {
          const std::size_t pos = advance().pos;
          const node* inner = expression(0);
          n.items.push_back(binary(node_kind::expref, inner, nullptr, pos));
        } else {
          n.items.push_back(expression(0));
        }
        if (cur_.type == tok::comma) {
          advance();
          continue;
        }
        expect(tok::rparen, "expected ',' or ')' in function call");
        break;
      }
    }
    n.fn = find_function(name.text);
    const int argc = static_cast<int>(n.items.size());
    if (!n.fn || argc < n.fn->min_args || (n.fn->max_args >= 0 && argc > n.fn->max_args)) {
      bad_call(n.fn, name, argc);
    }
    return finish(n);
  }

  // Records an unknown function or a wrong argument count (reported after the whole parse).
  [[gnu::noinline, gnu::cold]] void bad_call(const function_info* fn, const token& name, int argc) {
    if (!fn) {
      semantic(error_kind::unknown_function, "unknown function " + name.text + "()", name.pos);
      return;
    }
    std::string expected;
    if (fn->max_args < 0) {
      expected = "at least " + std::to_string(fn->min_args);
    } else if (fn->min_args == fn->max_args) {
      expected = std::to_string(fn->min_args);
    } else {
      expected = std::to_string(fn->min_args) + " to " + std::to_string(fn->max_args);
    }
    semantic(error_kind::invalid_arity,
             name.text + "() takes " + expected + " argument" + (expected == "1" ? "" : "s") +
                 ", got " + std::to_string(argc),
             name.pos);
  }

  std::string_view src_;
  lexer lx_;
  program& prog_;
  token cur_;
  std::optional<token> next_;
  std::size_t depth_ = 0;
  std::optional<parse_failure> semantic_;
};

}  // namespace

std::shared_ptr<const program> parse_expression(std::string_view text, parse_failure& err) {
  auto prog = std::make_shared<program>();
  prog->text.assign(text);
  try {
    parser p(prog->text, 0, *prog);
    prog->root = p.parse_all();
    return prog;
  } catch (parse_failure& f) {
    err = std::move(f);
  } catch (const std::bad_alloc&) {
    err = parse_failure{error_kind::depth, "out of memory while parsing", 0};
  }
  return nullptr;
}

std::shared_ptr<const program> parse_embedded(std::string_view text, std::size_t start,
                                              std::size_t& close, parse_failure& err) {
  auto prog = std::make_shared<program>();
  try {
    parser p(text, start, *prog);
    prog->root = p.parse_embedded(close);
    std::string_view inner = text.substr(start, close - start);
    while (!inner.empty() && (inner.front() == ' ' || inner.front() == '\t' ||
                              inner.front() == '\n' || inner.front() == '\r')) {
      inner.remove_prefix(1);
    }
    while (!inner.empty() && (inner.back() == ' ' || inner.back() == '\t' || inner.back() == '\n' ||
                              inner.back() == '\r')) {
      inner.remove_suffix(1);
    }
    prog->text.assign(inner);
    return prog;
  } catch (parse_failure& f) {
    err = std::move(f);
  } catch (const std::bad_alloc&) {
    err = parse_failure{error_kind::depth, "out of memory while parsing", start};
  }
  return nullptr;
}

}  // namespace fraiseql::expr::detail
