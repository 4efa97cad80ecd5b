// observerctl: operator tool. This build has `validate-config` and `eval`; the
// commands that talk to live nodes over CAF come with the control plane.
//
// Exit codes: 0 success, 1 evaluation error, 2 invalid input (usage, config,
// expression syntax, unreadable event file).

#include "runtime/config.hpp"
#include "runtime/expr/jmespath.hpp"
#include "runtime/expr/template.hpp"
#include "runtime/observers.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

namespace {

/// `observerctl eval`: evaluates a condition or renders a template against an
/// event envelope read from a file, as the router and the actions would.
int run_eval(const std::string& event_file, const std::string& condition,
             const std::string& templ) {
  std::ifstream in(event_file);
  if (!in) {
    std::cerr << "error: cannot read event file " << event_file << "\n";
    return 2;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  boost::system::error_code ec;
  auto envelope = boost::json::parse(ss.str(), ec);
  if (ec) {
    std::cerr << "error: " << event_file << ": not valid JSON: " << ec.message() << "\n";
    return 2;
  }
  if (!condition.empty()) {
    auto e = fraiseql::expr::expression::compile(condition);
    if (!e) {
      std::cerr << "error: " << e.err().to_string() << "\n";
      return 2;
    }
    // The value as the router sees it: `event` names the envelope itself.
    boost::json::value aliased = envelope;
    if (aliased.is_object() && !aliased.as_object().contains("event"))
      aliased.as_object()["event"] = envelope;
    auto v = e->evaluate(aliased);
    auto c = fraiseql::expr::evaluate_condition(*e, envelope);
    if (!c) {
      std::cerr << "error: " << c.err().to_string() << "\n";
      return 1;
    }
    if (v) std::cout << "value: " << boost::json::serialize(*v) << "\n";
    std::cout << "fires: " << (*c ? "true" : "false") << "\n";
    return 0;
  }
  auto t = fraiseql::expr::template_::compile(templ);
  if (!t) {
    std::cerr << "error: " << t.err().to_string() << "\n";
    return 2;
  }
  if (t->is_single_expression()) {
    auto rv = t->render_value(envelope);
    if (!rv) {
      std::cerr << "error: " << rv.err().to_string() << "\n";
      return 1;
    }
    std::cout << boost::json::serialize(*rv) << "\n";
    return 0;
  }
  // JSON with holes renders escaped (as webhook bodies); other text as plain text.
  auto txt = t->json_error() ? t->render_text(envelope) : t->render_json(envelope);
  if (!txt) {
    std::cerr << "error: " << txt.err().to_string() << "\n";
    return 1;
  }
  std::cout << *txt << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"observerctl: operate FraiseQL observer nodes"};
  app.set_version_flag("--version", "observerctl 0.1.0");
  app.require_subcommand(1);
  auto* vc = app.add_subcommand("validate-config", "Validate a configuration file");
  std::string file;
  bool detailed = false;
  vc->add_option("file", file, "TOML configuration file")->required();
  vc->add_flag("--detailed", detailed, "Print the observers and actions found");
  auto* ev = app.add_subcommand("eval", "Evaluate a condition or render a template offline");
  std::string event_file, condition, templ;
  ev->add_option("--event", event_file, "JSON file holding an event envelope")->required();
  auto* cond_opt = ev->add_option("--condition", condition, "JMESPath condition");
  auto* templ_opt = ev->add_option("--template", templ, "Template with {{ expr }} holes");
  cond_opt->excludes(templ_opt);
  try {
    app.parse(argc, argv);
    if (*ev && condition.empty() && templ.empty())
      throw CLI::RequiredError("--condition or --template");
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (*ev) return run_eval(event_file, condition, templ);
  auto res = fraiseql::load_config_file(file);
  if (!res) {
    for (const auto& e : res.errors) std::cerr << "error: " << e.to_string() << "\n";
    std::cerr << res.errors.size() << " configuration error(s)\n";
    return 2;
  }
  std::vector<std::string> errors;
  fraiseql::observer_registry::build(res.value->observers, errors);
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << "error: " << file << ": " << e << "\n";
    return 2;
  }
  const auto& cfg = *res.value;
  std::cout << file << ": configuration is valid\n";
  if (detailed) {
    std::cout << "  transport: " << cfg.transport.transport << "\n"
              << "  listener: id=" << cfg.listener.listener_id
              << " batch_size=" << cfg.listener.batch_size
              << " max_in_flight=" << cfg.listener.max_in_flight << "\n"
              << "  observers: " << cfg.observers.size() << "\n";
    for (const auto& o : cfg.observers) {
      std::cout << "    - " << o.name << ": " << o.event_type << " " << o.entity
                << (o.condition.empty() ? "" : " if " + o.condition) << "\n";
      for (size_t i = 0; i < o.actions.size(); ++i) {
        const auto& a = o.actions[i];
        std::cout << "        action " << i << ": " << a.type;
        if (a.webhook) std::cout << " " << a.webhook->method << " " << a.webhook->url;
        std::cout << "\n";
      }
      std::cout << "        retry: max_attempts=" << o.retry.max_attempts
                << " initial_delay_ms=" << o.retry.initial_delay_ms
                << " max_delay_ms=" << o.retry.max_delay_ms << "\n";
    }
  }
  return 0;
}
