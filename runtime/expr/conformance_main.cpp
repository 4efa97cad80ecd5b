// jmespath-conformance: runs JMESPath compliance files (jmespath.test format) against the
// engine. Each file is a list of suites {given, cases}; a case has an `expression` and either
// a `result`, an `error` kind or a `bench` kind (which only has to compile and evaluate).
//
// Prints one line per failure and finally "N passed, M failed"; exits 0 only if M == 0.

#include "runtime/expr/jmespath.hpp"

#include "runtime/expr/detail/json_util.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/value.hpp>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace {

namespace json = boost::json;
using fraiseql::expr::expression;

std::string compact(const json::value& v, std::size_t limit = 400) {
  std::string s;
  try {
    fraiseql::expr::detail::append_json(s, v);
  } catch (...) {
    s = "<unprintable>";
  }
  if (s.size() > limit) s = s.substr(0, limit) + "...";
  return s;
}

std::string basename(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

struct tally {
  std::size_t passed = 0;
  std::size_t failed = 0;
};

void report(const std::string& file, const json::value& given, const std::string& expr,
            const std::string& expected, const std::string& got) {
  std::cout << "FAIL " << file << ": given=" << compact(given, 200) << " expression=" << expr
            << " expected=" << expected << " got=" << got << '\n';
}

void run_case(const std::string& file, const json::value& given, const json::object& c, tally& t) {
  const json::value* e = c.if_contains("expression");
  if (!e || !e->is_string()) {
    report(file, given, "<missing>", "a case with an expression", compact(json::value(c)));
    ++t.failed;
    return;
  }
  const std::string expr(e->get_string());
  const std::string shown = compact(*e);
  auto compiled = expression::compile(expr);

  if (const json::value* bench = c.if_contains("bench")) {
    const bool parse_only = bench->is_string() && bench->get_string() == "parse";
    if (!compiled) {
      report(file, given, shown, "compiles (bench)", compiled.err().to_string());
      ++t.failed;
      return;
    }
    if (!parse_only) {
      auto r = compiled->evaluate(given);
      if (!r) {
        report(file, given, shown, "evaluates (bench)", r.err().to_string());
        ++t.failed;
        return;
      }
    }
    ++t.passed;
    return;
  }

  if (const json::value* err = c.if_contains("error")) {
    const std::string want = err->is_string() ? std::string(err->get_string()) : compact(*err);
    std::string got;
    if (!compiled) {
      got = fraiseql::expr::to_string(compiled.err().kind);
      if (got == want) {
        ++t.passed;
        return;
      }
      report(file, given, shown, "error " + want, "error " + compiled.err().to_string());
      ++t.failed;
      return;
    }
    auto r = compiled->evaluate(given);
    if (!r && fraiseql::expr::to_string(r.err().kind) == want) {
      ++t.passed;
      return;
    }
    report(file, given, shown, "error " + want,
           r ? "result " + compact(*r) : "error " + r.err().to_string());
    ++t.failed;
    return;
  }

  const json::value* want = c.if_contains("result");
  if (!want) {
    report(file, given, shown, "a result, error or bench key", compact(json::value(c)));
    ++t.failed;
    return;
  }
  if (!compiled) {
    report(file, given, shown, compact(*want), "error " + compiled.err().to_string());
    ++t.failed;
    return;
  }
  auto r = compiled->evaluate(given);
  if (!r) {
    report(file, given, shown, compact(*want), "error " + r.err().to_string());
    ++t.failed;
    return;
  }
  bool same = false;
  try {
    same = fraiseql::expr::detail::json_equal(*r, *want);
  } catch (...) {
    same = false;
  }
  if (same) {
    ++t.passed;
  } else {
    report(file, given, shown, compact(*want), compact(*r));
    ++t.failed;
  }
}

void run_file(const std::string& path, tally& t) {
  const std::string file = basename(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cout << "FAIL " << file << ": cannot open " << path << '\n';
    ++t.failed;
    return;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  json::parse_options opts;
  opts.max_depth = 1000;
  boost::system::error_code ec;
  const json::value doc = json::parse(buf.str(), ec, {}, opts);
  if (ec || !doc.is_array()) {
    std::cout << "FAIL " << file << ": not a JSON array of suites"
              << (ec ? " (" + ec.message() + ")" : std::string()) << '\n';
    ++t.failed;
    return;
  }
  for (const json::value& suite : doc.get_array()) {
    const json::object* s = suite.if_object();
    const json::value* given = s ? s->if_contains("given") : nullptr;
    const json::value* cases = s ? s->if_contains("cases") : nullptr;
    if (!given || !cases || !cases->is_array()) {
      std::cout << "FAIL " << file << ": malformed suite " << compact(suite, 200) << '\n';
      ++t.failed;
      continue;
    }
    for (const json::value& c : cases->get_array()) {
      if (!c.is_object()) {
        std::cout << "FAIL " << file << ": malformed case " << compact(c, 200) << '\n';
        ++t.failed;
        continue;
      }
      run_case(file, *given, c.get_object(), t);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: jmespath-conformance FILE.json...\n";
    return 2;
  }
  tally t;
  for (int i = 1; i < argc; ++i) run_file(argv[i], t);
  std::cout << t.passed << " passed, " << t.failed << " failed\n";
  return t.failed == 0 ? 0 : 1;
}
