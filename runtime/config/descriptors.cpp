// The descriptor tables of the fixed configuration sections (descriptors.hpp).
// Bounds, choices and variables are written here only; the loader's generic
// reader turns them into the messages of docs/configuration.md.

#include "runtime/config/descriptors.hpp"

#include "runtime/config/loopback.hpp"
#include "runtime/config/toml_util.hpp"

#include <algorithm>

namespace fraiseql::config_schema {

namespace {

using config_detail::check_db_url;
using config_detail::check_nats_urls;
using config_detail::check_redis_url;
using config_detail::u32_max;
using std::string;

constexpr uint32_t day_secs = 86400;

std::optional<string> check_listener_id(const string& id) {
  const bool ok = !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
    return config_detail::is_alpha(c) || config_detail::is_digit(c) || c == '_' || c == '.' ||
           c == '-';
  });
  if (ok) return std::nullopt;
  return "'" + id + "' is not a valid listener id (non-empty, characters A-Z a-z 0-9 _ . -)";
}

std::optional<string> check_metrics_bind(const string& bind) {
  if (bind.empty() || bind.find_first_of(" /:") != string::npos)
    return "'" + bind + "' is not an IPv4 address or host name";
  return std::nullopt;
}

std::optional<string> check_control_bind(const string& bind) {
  if (bind.empty() || bind.find_first_of(" /") != string::npos)
    return "'" + bind + "' is not an IP address or host name";
  return std::nullopt;
}

std::optional<string> check_node_name(const string& name) {
  const bool ok = name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
                    return config_detail::is_alpha(c) || config_detail::is_digit(c) || c == '_' ||
                           c == '.' || c == '-';
                  });
  if (ok) return std::nullopt;
  return "'" + name + "' is not a valid node name (at most 64 characters A-Z a-z 0-9 _ . -)";
}

std::optional<string> check_seed(const string& seed) {
  if (parse_host_port(seed)) return std::nullopt;
  return "'" + seed + "' is not a seed address (host:port, port 1-65535)";
}

bool is_name_char(char c) {
  return config_detail::is_alpha(c) || config_detail::is_digit(c) || c == '_' || c == '-';
}

/// A JetStream stream or consumer name: letters, digits, - and _ only.
std::optional<string> check_nats_name(const string& name) {
  if (!name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), is_name_char))
    return std::nullopt;
  return "'" + name + "' is not a valid name (1-128 characters A-Z a-z 0-9 - _)";
}

/// A subject token and part of each Msg-Id; empty: derived from [database] url.
std::optional<string> check_source_name(const string& name) {
  if (name.empty()) return std::nullopt;
  return check_nats_name(name);
}

std::optional<string> check_worker_name(const string& name) {
  if (name.empty()) return std::nullopt;
  return check_node_name(name);
}

/// Tokens of letters, digits, - and _ separated by '.', no wildcards.
std::optional<string> check_subject_prefix(const string& prefix) {
  size_t begin = 0;
  for (;;) {
    const size_t dot = prefix.find('.', begin);
    const string token = prefix.substr(begin, dot == string::npos ? string::npos : dot - begin);
    if (token.empty() || !std::all_of(token.begin(), token.end(), is_name_char))
      return "'" + prefix +
             "' is not a subject prefix (tokens of A-Z a-z 0-9 - _ separated by '.'; no "
             "wildcards * >, no empty token)";
    if (dot == string::npos) return std::nullopt;
    begin = dot + 1;
  }
}

std::optional<string> check_runtime_dir(const string& dir) {
  if (dir.empty() || dir.front() != '/') return "'" + dir + "' is not an absolute path";
  return std::nullopt;
}

tables build() {
  using D = database_config;
  using T = transport_config;
  using L = listener_config;
  using C = checkpoint_config;
  using P = performance_config;
  using B = circuit_breaker_config;
  using AC = adaptive_concurrency_config;
  using R = redis_config;
  using Q = job_queue_config;
  using K = control_config;
  using N = cluster_config;
  using M = metrics_config;
  using Y = retry_config;
  using S = nats_config;
  tables t;
  t.database = {
      "database",
      {text("url", &D::url, "Connection string: postgresql:// URL or libpq key=value.")
           .validated_by(check_db_url)
           .with_env("FRAISEQL_DATABASE_URL", env_form::by_hand, "DATABASE_URL"),
       text("url_env", &D::url_env, "Variable holding the connection string.").read_by_hand(),
       integer("reconnect_max_delay_ms", &D::reconnect_max_delay_ms, 1, 3600000,
               "Reconnection back-off bound.")}};
  t.transport = {
      "transport",
      {choice("transport", &T::transport, {"postgres", "nats", "in_memory"},
              "Where events come from.")
           .with_env("FRAISEQL_OBSERVER_TRANSPORT"),
       flag("run_bridge", &T::run_bridge, "nats: run the PostgreSQL -> NATS bridge.")
           .with_env("FRAISEQL_NATS_ENABLE_BRIDGE"),
       flag("run_executors", &T::run_executors, "nats: run workers (consumers -> executors).")
           .with_env("FRAISEQL_NATS_RUN_EXECUTORS")}};
  t.listener = {
      "listener",
      {text("listener_id", &L::listener_id, "This node's row in observer_checkpoints.")
           .validated_by(check_listener_id),
       integer("batch_size", &L::batch_size, 1, 100000, "Change-log rows read per query."),
       integer("poll_interval_ms", &L::poll_interval_ms, 1, 3600000, "Poll interval while idle."),
       integer("max_in_flight", &L::max_in_flight, 1, 10000000, "Events read but not finished.")
           .with_env("FRAISEQL_CHANNEL_CAPACITY"),
       integer("max_bytes_in_flight", &L::max_bytes_in_flight, 1u << 20, u32_max,
               "Bytes events hold while referenced in the node."),
       integer("max_event_bytes", &L::max_event_bytes, 1024, u32_max,
               "Larger change-log rows go to the DLQ unread.")}};
  t.checkpoint = {
      "checkpoint",
      {integer("batch_size", &C::batch_size, 1, u32_max, "Save after this many finished events."),
       integer("interval_ms", &C::interval_ms, 1, u32_max, "...or after this long.")}};
  t.performance = {
      "performance",
      {flag("enable_dedup", &P::enable_dedup, "Event deduplication in Redis.")
           .with_env("FRAISEQL_ENABLE_DEDUP"),
       flag("enable_caching", &P::enable_caching, "Action-result cache.")
           .with_env("FRAISEQL_ENABLE_CACHING"),
       integer("cache_capacity", &P::cache_capacity, 1, 100000000,
               "Entries of the in-memory cache."),
       flag("enable_concurrent", &P::enable_concurrent, "Run an event's actions concurrently.")
           .with_env("FRAISEQL_ENABLE_CONCURRENT"),
       integer("max_concurrent_actions", &P::max_concurrent_actions, 1, 100000,
               "Attempts in flight at most.")
           .with_env("FRAISEQL_MAX_CONCURRENT_ACTIONS", env_form::value,
                     "FRAISEQL_MAX_CONCURRENCY"),
       integer("concurrent_timeout_ms", &P::concurrent_timeout_ms, 1, u32_max,
               "Bound on any attempt.")}};
  t.circuit_breaker = {
      "circuit_breaker",
      {flag("enabled", &B::enabled, "One breaker per endpoint."),
       number("failure_threshold", &B::failure_threshold, 0, 1, true,
              "Failure ratio that opens it."),
       number("success_threshold", &B::success_threshold, 0, 1, true,
              "Probe success ratio that closes it."),
       integer("timeout_ms", &B::timeout_ms, 1, 86400000, "Time open before probing."),
       integer("sample_size", &B::sample_size, 1, 10000, "Calls observed before any change."),
       integer("half_open_probes", &B::half_open_probes, 1, 1000,
               "Probe calls per half-open phase.")}};
  t.adaptive_concurrency = {
      "adaptive_concurrency",
      {flag("enabled", &AC::enabled, "Learn an in-flight limit per endpoint.")
           .with_env("FRAISEQL_ADAPTIVE_CONCURRENCY"),
       integer("min_limit", &AC::min_limit, 1, 100000, "Lowest limit (also a probe's)."),
       integer("max_limit", &AC::max_limit, 1, 100000, "Highest limit of one endpoint."),
       integer("initial_limit", &AC::initial_limit, 1, 100000, "Limit after the first probe."),
       number("tolerance", &AC::tolerance, 0, 10, false,
              "Latency up to (1 + tolerance) x baseline is near it."),
       integer("latency_slack_us", &AC::latency_slack_us, 0, 10000000,
               "...plus this much (jitter, not queueing)."),
       number("backoff", &AC::backoff, 0, 0.99, true, "Factor on overload (429, 503, timeout)."),
       number("smoothing", &AC::smoothing, 0, 1, true, "Share of a decrease applied per window."),
       integer("window_samples", &AC::window_samples, 1, 100000, "Fewest calls per decision."),
       integer("baseline_interval_ms", &AC::baseline_interval_ms, 1000, 86400000,
               "Time between baseline probes."),
       integer("baseline_samples", &AC::baseline_samples, 1, 1000, "Calls measured per probe."),
       integer("max_endpoints", &AC::max_endpoints, 1, 1000000, "Limiters kept at most.")}};
  t.redis = {
      "redis",
      {text("url", &R::url, "redis://[[user]:password@]host[:port][/db].")
           .validated_by(check_redis_url)
           .with_env("FRAISEQL_REDIS_URL", env_form::by_hand),
       integer("pool_size", &R::pool_size, 1, 1000, "Connections.")
           .with_env("FRAISEQL_REDIS_POOL_SIZE"),
       integer("connect_timeout_secs", &R::connect_timeout_secs, 1, 3600, "Bound on connecting.")
           .with_env("FRAISEQL_REDIS_CONNECT_TIMEOUT_SECS"),
       integer("command_timeout_secs", &R::command_timeout_secs, 1, 3600, "Bound on a command.")
           .with_env("FRAISEQL_REDIS_COMMAND_TIMEOUT_SECS"),
       integer("dedup_window_secs", &R::dedup_window_secs, 1, 30 * day_secs,
               "Finished events remembered.")
           .with_env("FRAISEQL_REDIS_DEDUP_WINDOW_SECS"),
       integer("cache_ttl_secs", &R::cache_ttl_secs, 1, 30 * day_secs,
               "Default TTL of cached results.")
           .with_env("FRAISEQL_REDIS_CACHE_TTL_SECS"),
       integer("claim_ttl_secs", &R::claim_ttl_secs, 1, day_secs, "Lifetime of a claim.")
           .with_env("FRAISEQL_REDIS_CLAIM_TTL_SECS"),
       choice("failure_policy", &R::failure_policy, {"fail_open", "fail_closed"},
              "While Redis is down.")
           .with_env("FRAISEQL_REDIS_FAILURE_POLICY")}};
  t.nats = {
      "nats",
      {text("url", &S::url, "Servers: nats://host:port or tls://host:port, comma-separated.")
           .validated_by(check_nats_urls)
           .with_env("FRAISEQL_NATS_URL", env_form::by_hand),
       text("user_env", &S::user_env, "Variable holding the user name.").read_by_hand(),
       text("password_env", &S::password_env, "Variable holding the password.").read_by_hand(),
       text("token_env", &S::token_env, "Variable holding an auth token.").read_by_hand(),
       text("credentials_file", &S::credentials_file, "A .creds file (JWT and NKey seed)."),
       flag("tls", &S::tls, "Require TLS to the servers."),
       text("tls_ca_file", &S::tls_ca_file, "CA bundle (PEM); empty: the system's."),
       text("tls_cert_file", &S::tls_cert_file, "Client certificate (PEM)."),
       text("tls_key_file", &S::tls_key_file, "Its private key (PEM)."),
       text("stream", &S::stream, "JetStream stream of the events.").validated_by(check_nats_name),
       text("subject_prefix", &S::subject_prefix, "First subject tokens of every event.")
           .validated_by(check_subject_prefix),
       integer("replicas", &S::replicas, 1, 5, "Stream replicas."),
       integer("duplicate_window_secs", &S::duplicate_window_secs, 1, day_secs,
               "A Msg-Id seen within this window is stored once."),
       integer("max_age_secs", &S::max_age_secs, 0, 3650 * day_secs,
               "Stream retention by age; 0: until limits."),
       integer("partitions", &S::partitions, 1, 1024, "Partitions of the subject space."),
       text("source_name", &S::source_name,
            "This database in subjects and Msg-Ids; empty: its database name.")
           .validated_by(check_source_name),
       integer("publish_ack_timeout_ms", &S::publish_ack_timeout_ms, 100, 600000,
               "Bridge: unacknowledged publishes are sent again after this."),
       integer("publish_window", &S::publish_window, 1, 1000000,
               "Bridge: publishes awaiting their ack at most."),
       text("consumer", &S::consumer, "Durable consumer name (prefix per partition).")
           .validated_by(check_nats_name),
       integer("ack_wait_ms", &S::ack_wait_ms, 1000, 3600000,
               "Unacknowledged this long: redelivered."),
       integer("max_deliver", &S::max_deliver, 1, 1000, "Deliveries before the DLQ."),
       integer("max_ack_pending", &S::max_ack_pending, 1, 100000,
               "Unacknowledged messages per partition consumer."),
       integer("fetch_batch", &S::fetch_batch, 1, 10000, "Messages per fetch at most."),
       integer("partition_lease_ms", &S::partition_lease_ms, 1000, 600000,
               "Partition ownership lease; at most ack_wait_ms."),
       text("worker_name", &S::worker_name,
            "This worker in the ownership bucket; empty: node_name, else host:pid.")
           .validated_by(check_worker_name)}};
  t.shutdown = {
      "shutdown",
      {integer("timeout_ms", &shutdown_config::timeout_ms, 0, u32_max, "Graceful stop bound.")
           .with_env("FRAISEQL_SHUTDOWN_TIMEOUT", env_form::duration)}};
  t.failover = {"failover",
                {integer("health_check_interval_ms", &failover_config::health_check_interval_ms,
                         100, 60000, "Lease renewal period of the leader."),
                 integer("failover_threshold_ms", &failover_config::failover_threshold_ms, 1000,
                         600000, "Lease lifetime without renewal.")}};
  t.logging = {"logging",
               {choice("level", &logging_config::level, config_detail::log_levels,
                       "Minimum level logged.", true)
                    .with_env("FRAISEQL_LOG", env_form::by_hand, "RUST_LOG"),
                choice("format", &logging_config::format, {"text", "json"}, "Log line format.")}};
  t.metrics = {"metrics",
               {flag("enabled", &M::enabled, "Serve /metrics, /healthz, /readyz."),
                text("bind", &M::bind, "Listen address.").validated_by(check_metrics_bind),
                integer("port", &M::port, 0, 65535, "Port; 0 picks a free one."),
                integer("readiness_max_checkpoint_age_ms", &M::readiness_max_checkpoint_age_ms, 0,
                        86400000, "/readyz fails past this checkpoint age; 0: never.")}};
  t.control = {
      "control",
      {flag("enabled", &K::enabled, "Publish the control actor."),
       text("bind", &K::bind, "Listen address.").validated_by(check_control_bind),
       integer("port", &K::port, 0, 65535, "Port; 0 picks a free one."),
       text("runtime_dir", &K::runtime_dir, "Directory of the generated token file.")
           .validated_by(check_runtime_dir)
           .with_env("FRAISEQL_RUNTIME_DIR"),
       text("token_env", &K::token_env, "Variable holding the auth token.").read_by_hand(),
       text("token_file", &K::token_file, "File holding the auth token.").read_by_hand(),
       text("tls_certificate", &K::tls_certificate, "This node's certificate (PEM)."),
       text("tls_key", &K::tls_key, "Its private key (PEM)."),
       text("tls_ca", &K::tls_ca, "The CA that signs peers (PEM)."),
       integer("journal_size", &K::journal_size, 0, 1000000, "Events in the debug journal.")}};
  t.cluster = {
      "cluster",
      {flag("enabled", &N::enabled, "Run the failover coordinator and join the cluster."),
       text("node_name", &N::node_name, "Unique node name; empty: the host name.")
           .validated_by(check_node_name),
       text("bind", &N::bind, "Listen address.").validated_by(check_control_bind),
       integer("port", &N::port, 0, 65535, "Port; 0 picks a free one."),
       text_list("seeds", &N::seeds, "host:port of other nodes' coordinators.")
           .validated_by(check_seed),
       integer("heartbeat_interval_ms", &N::heartbeat_interval_ms, 50, 60000,
               "Heartbeats between coordinators."),
       integer("connection_timeout_ms", &N::connection_timeout_ms, 0, 600000,
               "Silence after which a peer is unreachable; 0: failover_threshold_ms."),
       text("token_env", &N::token_env, "Variable holding the cluster token.").read_by_hand(),
       text("token_file", &N::token_file, "File holding the cluster token.").read_by_hand(),
       text("tls_certificate", &N::tls_certificate, "This node's certificate (PEM)."),
       text("tls_key", &N::tls_key, "Its private key (PEM)."),
       text("tls_ca", &N::tls_ca, "The CA that signs peers (PEM).")}};
  t.change_log = {
      "change_log",
      {flag("prune", &change_log_config::prune, "Delete rows every checkpoint has passed."),
       integer("retention_hours", &change_log_config::retention_hours, 1, 87600,
               "...once they are older than this."),
       integer("prune_interval_secs", &change_log_config::prune_interval_secs, 1, 86400,
               "Pruning rounds this often."),
       integer("prune_batch_size", &change_log_config::prune_batch_size, 100, 100000,
               "Rows per DELETE transaction.")}};
  using A = audit_config;
  t.audit = {
      "audit",
      {flag("enabled", &A::enabled, "Record events and action attempts."),
       choice("backend", &A::backend, {"postgres", "elasticsearch"}, "Where records go."),
       integer("retention_days", &A::retention_days, 1, 36500, "Days kept (postgres)."),
       integer("retention_interval_secs", &A::retention_interval_secs, 10, 86400,
               "Retention rounds this often."),
       integer("queue_size", &A::queue_size, 100, 10000000, "Records waiting at most."),
       integer("queue_max_bytes", &A::queue_max_bytes, 1u << 20, u32_max, "Bytes waiting at most."),
       integer("batch_size", &A::batch_size, 1, 100000, "Records per write."),
       integer("flush_interval_ms", &A::flush_interval_ms, 10, 60000, "Writes this often."),
       text("elasticsearch_url", &A::elasticsearch_url, "Elasticsearch/OpenSearch base URL."),
       text("elasticsearch_index", &A::elasticsearch_index, "Index prefix."),
       text("elasticsearch_auth_env", &A::elasticsearch_auth_env, "Variable with credentials."),
       integer("elasticsearch_bulk_max_docs", &A::elasticsearch_bulk_max_docs, 1, 100000,
               "Documents per _bulk request."),
       integer("elasticsearch_bulk_max_bytes", &A::elasticsearch_bulk_max_bytes, 1024, 100u << 20,
               "Bytes per _bulk request."),
       integer("elasticsearch_timeout_ms", &A::elasticsearch_timeout_ms, 100, 600000,
               "Timeout of one request."),
       integer("elasticsearch_max_backoff_ms", &A::elasticsearch_max_backoff_ms, 100, 3600000,
               "Bound on the delay between retries.")}};
  t.job_queue = {
      "job_queue",
      {flag("enabled", &Q::enabled, "Turn the queue on."),
       integer("workers", &Q::workers, 1, 10000, "Jobs running at the same time."),
       integer("poll_interval_ms", &Q::poll_interval_ms, 1, 3600000,
               "Poll for due jobs this often."),
       integer("batch_size", &Q::batch_size, 1, 10000, "Jobs per claim, rows per INSERT."),
       integer("lease_ms", &Q::lease_ms, 1000, 86400000, "Lease of a claimed job.")}};
  t.retry = {"observers.retry",
             {integer("max_attempts", &Y::max_attempts, 1, 1000, "Attempts in total."),
              integer("initial_delay_ms", &Y::initial_delay_ms, 0, u32_max,
                      "Delay before the second attempt."),
              integer("max_delay_ms", &Y::max_delay_ms, 0, u32_max, "Bound on any delay."),
              choice("backoff_strategy", &Y::strategy, {"exponential", "linear", "fixed"},
                     "Growth of the delay."),
              number("jitter", &Y::jitter, 0, 1, false, "Full jitter fraction.")}};
  return t;
}

string default_text(const option_spec& spec, const value& v) {
  switch (spec.type) {
    case option_type::boolean:
      return std::get<bool>(v) ? "true" : "false";
    case option_type::u32:
      return std::to_string(std::get<uint32_t>(v));
    case option_type::number:
      return config_detail::number_text(std::get<double>(v));
    case option_type::strings: {
      string out = "[";
      for (const auto& s : std::get<std::vector<string>>(v))
        out += (out.size() > 1 ? ", \"" : "\"") + s + "\"";
      return out + "]";
    }
    case option_type::string:
    case option_type::choice:
      break;
  }
  const string& s = std::get<string>(v);
  return s.empty() ? string() : "\"" + s + "\"";
}

template <class S>
void list_section(const section<S>& sec, std::vector<option_info>& out) {
  const S defaults{};
  for (const auto& o : sec.options)
    out.push_back(option_info{string(sec.name), &o, default_text(o, o.get(defaults))});
}

}  // namespace

const tables& options() {
  static const tables t = build();
  return t;
}

std::vector<option_info> list_options() {
  const tables& t = options();
  std::vector<option_info> out;
  auto add = [&out](const auto& sec) { list_section(sec, out); };
  add(t.database), add(t.transport), add(t.listener), add(t.checkpoint), add(t.performance);
  add(t.circuit_breaker), add(t.adaptive_concurrency), add(t.redis), add(t.nats), add(t.shutdown),
      add(t.failover), add(t.logging);
  add(t.metrics);
  add(t.control), add(t.cluster), add(t.change_log), add(t.audit), add(t.job_queue), add(t.retry);
  return out;
}

}  // namespace fraiseql::config_schema
