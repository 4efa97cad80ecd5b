// observer-node: runs the FraiseQL observer pipeline.
//
//   observer-node --config FILE [--role bridge|worker|all] [--dry-run]   run
//   observer-node --config FILE --validate                  check the config, exit
//   observer-node migrate --config FILE                     install/upgrade the schema
//
// Installed also as `fraiseql-observer` (a symlink, the spec's name): help and
// --version name the program as it was invoked.
//
// Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.

#include "actors/cluster/cluster.hpp"
#include "actors/control/control.hpp"
#include "node/node.hpp"
#include "runtime/config/loader.hpp"
#include "runtime/config/model.hpp"
#include "runtime/config/roles.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/io/net/http_client.hpp"
#include "runtime/io/pg/migrations.hpp"
#include "runtime/io/pg/session.hpp"
#include "runtime/ops/logging.hpp"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_config = 2;

/// Loads `path` and resolves the process roles for `role` (--role): role
/// errors are configuration errors, located like the others.
std::optional<fraiseql::config> load_or_report(const std::string& path,
                                               const std::string& role = "all") {
  auto res = fraiseql::load_config_file(path, fraiseql::process_env, role);
  if (!res) {
    for (const auto& e : res.errors) std::cerr << "error: " << e.to_string() << "\n";
    std::cerr << res.errors.size() << " configuration error(s) in " << path
              << "; nothing was started\n";
    return std::nullopt;
  }
  for (const auto& w : res.warnings) std::cerr << "warning: " << w.to_string() << "\n";
  return std::move(*res.value);
}

/// Waits up to `timeout` for SIGINT/SIGTERM (blocked in every thread).
bool wait_for_signal(const sigset_t& set, std::chrono::milliseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000),
              static_cast<long>((timeout.count() % 1000) * 1000000)};
  int sig = sigtimedwait(&set, nullptr, &ts);
  if (sig > 0) {
    spdlog::info("received {}, stopping gracefully", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return true;
  }
  return false;
}

int run(const fraiseql::config& cfg, bool dry_run, const sigset_t& signals) {
  using namespace std::chrono;
  std::unique_ptr<fraiseql::node> n;
  try {
    n = std::make_unique<fraiseql::node>(cfg, dry_run);
  } catch (const std::exception& e) {
    std::cerr << "error: " << cfg.source << ": " << e.what() << "\n";
    return exit_config;
  }
  // The cluster coordinator and the control plane come up first and stay up
  // while this node stands by, so `observerctl status` can say so.
  std::unique_ptr<fraiseql::cluster_server> cluster;
  if (cfg.cluster.enabled) {
    try {
      cluster = std::make_unique<fraiseql::cluster_server>(*n);
    } catch (const std::exception& e) {
      spdlog::error("cannot start: {}", e.what());
      return exit_failure;
    }
  }
  std::unique_ptr<fraiseql::control_server> control;
  if (cfg.control.enabled) {
    try {
      fraiseql::control_server::view_fn view;
      if (cluster) view = [c = cluster.get()] { return c->view(); };
      control = std::make_unique<fraiseql::control_server>(*n, std::move(view));
    } catch (const std::exception& e) {
      spdlog::error("cannot start: {}", e.what());
      return exit_failure;
    }
  }
  // On every way out, the peers hear first that this node leaves.
  struct leave_first {
    fraiseql::cluster_server* c;
    ~leave_first() {
      if (c != nullptr) c->leave();
    }
  } leaving{cluster.get()};
  milliseconds backoff{100};
  bool standing_by = false;
  for (;;) {
    try {
      n->start();
      break;
    } catch (const fraiseql::node::standby& e) {
      if (!standing_by) spdlog::info("{}", e.what());
      standing_by = true;
      if (wait_for_signal(signals, milliseconds(cfg.listener.poll_interval_ms))) return exit_ok;
    } catch (const fraiseql::pg_unavailable& e) {
      // The database, or NATS for a bridge or worker (the message says which).
      spdlog::warn("unavailable, retrying in {} ms: {}", backoff.count(), e.what());
      if (wait_for_signal(signals, backoff)) return exit_ok;
      backoff =
          std::min<milliseconds>(backoff * 2, milliseconds(cfg.database.reconnect_max_delay_ms));
    } catch (const std::exception& e) {
      spdlog::error("cannot start: {}", e.what());
      return exit_failure;
    }
  }
  while (!wait_for_signal(signals, seconds(3600))) {
  }
  bool drained = n->stop(milliseconds(cfg.shutdown.timeout_ms));
  if (cluster) cluster->leave();
  control.reset();
  spdlog::info("stopped{}", drained ? "" : " (some events left in flight; redelivered on restart)");
  return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals before any thread starts, so they are only ever
  // consumed by sigtimedwait in this thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  fraiseql::http_global_init();
  fraiseql::init_logging("info", "text");

  const std::string program =
      argc > 0 ? std::filesystem::path(argv[0]).filename().string() : "observer-node";
  CLI::App app{"FraiseQL observer node: turns committed PostgreSQL changes into side effects",
               program};
  app.set_version_flag("--version", program + " " FRAISEQL_VERSION);
  std::string config_path;
  std::string role = "all";
  bool validate = false;
  bool dry_run = false;
  app.add_option("-c,--config", config_path, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--role", role,
                 "bridge | worker | all (default; with transport nats: what [transport] "
                 "run_bridge / run_executors say)")
      ->check(CLI::IsMember({"bridge", "worker", "all"}));
  app.add_flag("--validate", validate, "Validate the configuration and exit");
  app.add_flag("--dry-run", dry_run,
               "Connect, read, match and log what would run; execute and checkpoint nothing");
  auto* migrate = app.add_subcommand("migrate", "Install or upgrade the database schema");
  std::string migrate_config;
  migrate->add_option("-c,--config", migrate_config, "TOML configuration file")
      ->required()
      ->check(CLI::ExistingFile);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? exit_ok : exit_config;
  }

  if (*migrate) {
    auto cfg = load_or_report(migrate_config);
    if (!cfg) return exit_config;
    fraiseql::init_logging(cfg->logging.level, cfg->logging.format);
    try {
      auto rep = fraiseql::apply_migrations(fraiseql::normalize_dsn(cfg->database.url));
      for (const auto& m : rep.applied) std::cout << "applied " << m << "\n";
      std::cout << "schema at version " << rep.to_version
                << (rep.applied.empty() ? " (already up to date)" : "") << "\n";
      return exit_ok;
    } catch (const std::exception& e) {
      std::cerr << "error: migrate: " << e.what() << "\n";
      return exit_failure;
    }
  }

  if (config_path.empty()) {
    std::cerr << "error: --config FILE is required\n" << app.help();
    return exit_config;
  }
  auto cfg = load_or_report(config_path, role);
  if (!cfg) return exit_config;
  fraiseql::init_logging(cfg->logging.level, cfg->logging.format);

  if (validate) {
    std::vector<std::string> errors;
    fraiseql::observer_registry::build(cfg->observers, errors);
    if (!errors.empty()) {
      for (const auto& e : errors) std::cerr << "error: " << config_path << ": " << e << "\n";
      return exit_config;
    }
    size_t actions = 0;
    for (const auto& o : cfg->observers) actions += o.actions.size();
    std::cout << config_path << ": configuration is valid (" << cfg->observers.size()
              << " observers, " << actions << " actions)\n";
    if (cfg->transport.transport == "nats")
      std::cout << "roles: " << fraiseql::roles_text(cfg->roles) << "\n";
    return exit_ok;
  }
  return run(*cfg, dry_run, signals);
}
