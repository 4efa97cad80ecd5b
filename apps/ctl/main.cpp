// observerctl: operator tool. This build has `validate-config`; the commands that
// talk to live nodes over CAF come with the control plane.

#include "runtime/config.hpp"
#include "runtime/observers.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"observerctl: operate FraiseQL observer nodes"};
  app.set_version_flag("--version", "observerctl 0.1.0");
  app.require_subcommand(1);
  auto* vc = app.add_subcommand("validate-config", "Validate a configuration file");
  std::string file;
  bool detailed = false;
  vc->add_option("file", file, "TOML configuration file")->required();
  vc->add_flag("--detailed", detailed, "Print the observers and actions found");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
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
