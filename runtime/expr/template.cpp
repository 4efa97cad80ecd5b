// `{{ expr }}` templates.

#include "runtime/expr/template.hpp"

#include "runtime/expr/detail/ast.hpp"
#include "runtime/expr/detail/eval.hpp"
#include "runtime/expr/detail/json_util.hpp"

#include <boost/json/parse_options.hpp>
#include <boost/json/stream_parser.hpp>

#include <exception>
#include <new>
#include <vector>

namespace fraiseql::expr {

namespace json = boost::json;

namespace detail {

struct template_segment {
  std::string literal;  // text before the hole
  expression hole;      // empty for the trailing text
  bool has_hole = false;
  bool in_string = false;  // the hole sits inside a JSON string of the template
  std::size_t column = 0;  // 1-based column of the hole's expression in the template
  std::size_t offset = 0;  // byte offset of the literal in the template
};

struct template_program {
  std::string text;
  std::vector<template_segment> segments;
  bool single = false;
  bool constant = true;
  std::optional<error> json_err;
};

namespace {

bool is_blank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return true;
}

// Works out which holes are inside JSON strings and whether the template is JSON with holes.
void analyse_json(template_program& t) {
  enum class state { outside, in_string, escape, unicode };
  state st = state::outside;
  int hex_left = 0;
  std::string skeleton;
  struct piece {
    std::size_t skeleton_offset, template_offset;
  };
  std::vector<piece> pieces;
  for (template_segment& seg : t.segments) {
    pieces.push_back({skeleton.size(), seg.offset});
    skeleton += seg.literal;
    for (char c : seg.literal) {
      switch (st) {
        case state::outside:
          if (c == '"') st = state::in_string;
          break;
        case state::in_string:
          if (c == '"') st = state::outside;
          if (c == '\\') st = state::escape;
          break;
        case state::escape:
          if (c == 'u') {
            st = state::unicode;
            hex_left = 4;
          } else {
            st = state::in_string;
          }
          break;
        case state::unicode:
          if (--hex_left == 0) st = state::in_string;
          break;
      }
    }
    if (!seg.has_hole) continue;
    if (st == state::escape || st == state::unicode) {
      if (!t.json_err) {
        t.json_err = error{error_kind::syntax,
                           "a template hole cannot follow a backslash escape inside a JSON string",
                           t.text, seg.column};
      }
    }
    seg.in_string = st != state::outside;
    if (!seg.in_string) skeleton += "null";
  }
  if (t.json_err) return;
  json::parse_options opts;
  opts.max_depth = max_nesting_depth;
  json::stream_parser p({}, opts);
  boost::system::error_code ec;
  const std::size_t consumed = p.write(skeleton.data(), skeleton.size(), ec);
  if (!ec) p.finish(ec);
  if (!ec) return;
  std::size_t at = std::min(consumed, skeleton.size());
  std::size_t template_offset = t.text.size();
  for (std::size_t i = pieces.size(); i-- > 0;) {
    if (pieces[i].skeleton_offset <= at) {
      const std::size_t into = at - pieces[i].skeleton_offset;
      const std::size_t lit = t.segments[i].literal.size();
      template_offset = pieces[i].template_offset + std::min(into, lit);
      break;
    }
  }
  t.json_err = error{error_kind::syntax, "template is not valid JSON with holes: " + ec.message(),
                     t.text, column_of(t.text, template_offset)};
}

void append_text(std::string& out, const json::value& v) {
  if (v.is_string()) {
    out.append(v.get_string().data(), v.get_string().size());
  } else if (!v.is_null()) {
    append_json(out, v);
  }
}

}  // namespace
}  // namespace detail

namespace {

// What a default-constructed template behaves as: the compiled empty text.
const detail::template_program& empty_program() {
  static const detail::template_program p = [] {
    detail::template_program t;
    t.segments.emplace_back();
    detail::analyse_json(t);
    return t;
  }();
  return p;
}

// Evaluates every hole in order; `emit(segment, value)` receives each result.
template <class Emit>
std::optional<error> for_each_hole(const detail::template_program& t, const json::value& root,
                                   Emit&& emit) {
  detail::eval_options opts;
  opts.event_alias = true;
  for (const detail::template_segment& seg : t.segments) {
    if (!seg.has_hole) {
      emit(seg, nullptr);
      continue;
    }
    try {
      const detail::program* p = detail::program_access::get(seg.hole);
      detail::eval_arena arena;
      const detail::jref r = detail::evaluate_ref(*p, root, opts, arena);
      emit(seg, &r.get());
    } catch (const detail::eval_failure& e) {
      return error{e.kind, e.message + " (template expression `" + seg.hole.text() + "`)", t.text,
                   seg.column};
    } catch (const detail::budget_exceeded&) {
      return error{error_kind::invalid_value,
                   "evaluation needs more than " + std::to_string(max_evaluation_bytes >> 20) +
                       " MiB (template expression `" + seg.hole.text() + "`)",
                   t.text, seg.column};
    } catch (const std::bad_alloc&) {
      return error{error_kind::invalid_value, "out of memory while rendering", t.text, seg.column};
    } catch (const std::exception& e) {
      return error{error_kind::invalid_value, std::string("rendering failed: ") + e.what(), t.text,
                   seg.column};
    }
  }
  return std::nullopt;
}

}  // namespace

result<template_> template_::compile(std::string_view text) {
  try {
    auto t = std::make_shared<detail::template_program>();
    t->text.assign(text);
    const std::string& s = t->text;
    std::size_t pos = 0;
    std::size_t holes = 0;
    for (;;) {
      detail::template_segment seg;
      seg.offset = pos;
      const std::size_t open = s.find("{{", pos);
      if (open == std::string::npos) {
        seg.literal = s.substr(pos);
        t->segments.push_back(std::move(seg));
        break;
      }
      seg.literal = s.substr(pos, open - pos);
      detail::parse_failure f;
      std::size_t close = 0;
      auto prog = detail::parse_embedded(s, open + 2, close, f);
      if (!prog) return detail::make_error(f, s);
      std::size_t expr_start = open + 2;
      while (expr_start < close && (s[expr_start] == ' ' || s[expr_start] == '\t' ||
                                    s[expr_start] == '\n' || s[expr_start] == '\r')) {
        ++expr_start;
      }
      seg.column = detail::column_of(s, expr_start);
      seg.hole = detail::program_access::make(std::move(prog));
      seg.has_hole = true;
      t->segments.push_back(std::move(seg));
      ++holes;
      pos = close + 2;
    }
    t->constant = holes == 0;
    t->single = holes == 1 && t->segments.size() == 2 && detail::is_blank(t->segments[0].literal) &&
                detail::is_blank(t->segments[1].literal);
    detail::analyse_json(*t);
    return template_(std::move(t));
  } catch (const std::bad_alloc&) {
    return error{error_kind::invalid_value, "out of memory while compiling the template",
                 std::string(text), 0};
  }
}

result<json::value> template_::render_value(const json::value& root) const {
  const detail::template_program& t = prog_ ? *prog_ : empty_program();
  if (t.single) {
    json::value out;
    auto err = for_each_hole(t, root, [&](const detail::template_segment&, const json::value* v) {
      if (v) out = json::value(*v, json::storage_ptr());
    });
    if (err) return std::move(*err);
    return out;
  }
  auto s = render_text(root);
  if (!s) return std::move(s).err();
  return json::value(*s);
}

result<std::string> template_::render_text(const json::value& root) const {
  const detail::template_program& t = prog_ ? *prog_ : empty_program();
  std::string out;
  auto err = for_each_hole(t, root, [&](const detail::template_segment& seg, const json::value* v) {
    out += seg.literal;
    if (v) detail::append_text(out, *v);
  });
  if (err) return std::move(*err);
  return out;
}

result<std::string> template_::render_json(const json::value& root) const {
  const detail::template_program& t = prog_ ? *prog_ : empty_program();
  if (t.json_err) return *t.json_err;
  std::string out;
  std::string scratch;
  auto err = for_each_hole(t, root, [&](const detail::template_segment& seg, const json::value* v) {
    out += seg.literal;
    if (!v) return;
    if (!seg.in_string) {
      detail::append_json(out, *v);
    } else if (v->is_string()) {
      detail::append_escaped(out, v->get_string());
    } else if (!v->is_null()) {
      scratch.clear();
      detail::append_json(scratch, *v);
      detail::append_escaped(out, scratch);
    }
  });
  if (err) return std::move(*err);
  return out;
}

std::optional<error> template_::json_error() const {
  if (!prog_) return empty_program().json_err;
  return prog_->json_err;
}

bool template_::is_single_expression() const noexcept {
  return prog_ && prog_->single;
}

bool template_::is_constant() const noexcept {
  return !prog_ || prog_->constant;
}

const std::string& template_::text() const noexcept {
  return prog_ ? prog_->text : empty_program().text;
}

}  // namespace fraiseql::expr
