// The roles of one process (roles.hpp): --role against [transport].

#include "runtime/config/roles.hpp"

#include <algorithm>
#include <utility>

namespace fraiseql {

namespace {

/// [nats] keys only workers read.
constexpr std::string_view worker_keys[] = {"consumer",        "ack_wait_ms", "max_deliver",
                                            "max_ack_pending", "fetch_batch", "partition_lease_ms",
                                            "worker_name"};
/// [nats] keys only the bridge reads.
constexpr std::string_view bridge_keys[] = {"source_name", "publish_ack_timeout_ms",
                                            "publish_window"};
/// [change_log] keys: pruning runs where the listener runs (the bridge).
constexpr std::string_view change_log_keys[] = {"prune", "retention_hours", "prune_interval_secs",
                                                "prune_batch_size"};

}  // namespace

std::string roles_text(const process_roles& roles) {
  std::string out;
  auto add = [&out](bool on, const char* name) {
    if (on) out += (out.empty() ? "" : ", ") + std::string(name);
  };
  add(roles.pipeline, "pipeline");
  add(roles.bridge, "bridge");
  add(roles.workers, "workers");
  return out.empty() ? "nothing" : out;
}

std::vector<config_error> resolve_roles(config& cfg, std::string_view role,
                                        std::vector<config_error>* warnings,
                                        const config_locator& where) {
  std::vector<config_error> errors;
  auto located = [&](std::string_view key, std::string message) {
    std::optional<config_location> l;
    if (where) l = where(key);
    if (!l) l = config_location{cfg.source, 0, 0, std::string(key)};
    return config_error{l->file, l->line, l->column, l->key, std::move(message)};
  };
  auto error = [&](std::string_view key, std::string message) {
    errors.push_back(located(key, std::move(message)));
  };
  // Only keys set in the file or the environment warn.
  auto warn = [&](std::string_view key, const std::string& message) {
    if (warnings == nullptr || !where) return;
    if (where(key)) warnings->push_back(located(key, message));
  };
  const std::string r(role);
  if (std::find(std::begin(role_names), std::end(role_names), role) == std::end(role_names)) {
    errors.push_back(config_error{cfg.source, 0, 0, "--role",
                                  "unknown role '" + r + "' (expected all, bridge or worker)"});
    return errors;
  }
  const transport_config& tr = cfg.transport;
  cfg.roles = process_roles{};
  if (tr.transport == "postgres") {
    if (role != "all")
      error("transport.transport",
            "--role " + r +
                " needs transport = \"nats\" (with \"postgres\" one process runs the listener "
                "and the executors: use --role all)");
    return errors;
  }
  cfg.roles.pipeline = false;
  if (tr.transport != "nats") return errors;  // in_memory: refused by the loader
  if (role == "all") {
    cfg.roles.bridge = tr.run_bridge;
    cfg.roles.workers = tr.run_executors;
    if (!tr.run_bridge && !tr.run_executors)
      error("transport.run_executors",
            "run_bridge and run_executors are both false: this process would run nothing (set "
            "one of them, or start it with --role bridge or --role worker)");
  } else if (role == "bridge") {
    cfg.roles.bridge = true;
  } else {
    cfg.roles.workers = true;
  }
  const bool by_role = role != "all";
  const std::string no_workers = by_role ? "--role " + r + " runs no workers"
                                         : "run_executors is false: this process runs no workers";
  const std::string no_bridge = by_role ? "--role " + r + " runs no bridge"
                                        : "run_bridge is false: this process runs no bridge";
  if (!cfg.roles.workers) {
    // A bridge publishes events; actions run on the workers.
    const std::pair<std::string_view, bool> action_keys[] = {
        {"job_queue.enabled", cfg.job_queue.enabled},
        {"performance.enable_dedup", cfg.performance.enable_dedup},
        {"performance.enable_caching", cfg.performance.enable_caching}};
    for (const auto& [key, on] : action_keys) {
      if (!on) continue;
      if (role == "bridge")
        error(key,
              "is true, but --role bridge runs no actions (the bridge only publishes events to "
              "NATS; the workers run them): set it to false in the bridge's configuration");
      else
        warn(key, "has no effect: " + no_workers + ", so no actions run here");
    }
    if (cfg.nats)
      for (std::string_view k : worker_keys)
        warn("nats." + std::string(k), "has no effect: " + no_workers);
  }
  if (!cfg.roles.bridge) {
    if (cfg.nats)
      for (std::string_view k : bridge_keys)
        warn("nats." + std::string(k), "has no effect: " + no_bridge);
    for (std::string_view k : change_log_keys)
      warn("change_log." + std::string(k),
           "has no effect: " + no_bridge + " (pruning runs on the bridge, next to the listener)");
  }
  return errors;
}

}  // namespace fraiseql
