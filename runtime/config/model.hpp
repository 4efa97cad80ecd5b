#pragma once

// The validated configuration model of an observer node.
//
// A TOML file (toml++) is parsed, checked strictly (unknown keys, wrong types
// and bad values are errors naming file, line, column and key) and then the
// spec's FRAISEQL_* environment variables override their keys. Nothing in the
// engine reads TOML or the environment directly: runtime/ turns this model into
// the typed per-actor configs.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fraiseql {

/// How the delay between attempts grows.
enum class backoff_strategy { exponential, linear, fixed };

/// `[observers.retry]`.
struct retry_config {
  /// Total number of attempts, including the first one (>= 1).
  uint32_t max_attempts = 3;
  /// Delay before the second attempt.
  uint32_t initial_delay_ms = 100;
  /// Upper bound of any delay.
  uint32_t max_delay_ms = 30000;
  backoff_strategy strategy = backoff_strategy::exponential;
  /// Full jitter fraction in [0, 1]: a delay d becomes uniform in [d*(1-j), d].
  double jitter = 0.2;
};

/// Which failed HTTP responses are retried (webhook and slack actions).
/// Transport errors and timeouts are always retryable.
struct http_retry_config {
  /// Statuses (300-599) that retry; every other non-2xx status is final (DLQ at
  /// once). nullopt: the default set, 408, 429 and 500-599.
  std::optional<std::vector<uint16_t>> retry_on_status;
  /// Whether a failed response with `status` should be retried.
  bool retryable(long status) const;
};

/// `[[observers.actions]]` with `type = "webhook"`.
struct webhook_action_config {
  /// Target URL (http or https). Templates come with the expression engine.
  std::string url;
  /// HTTP method: POST, PUT or PATCH.
  std::string method = "POST";
  /// Extra request headers.
  std::map<std::string, std::string> headers;
  /// Request body template; empty means the event envelope as JSON.
  std::string body_template;
  /// Per-attempt timeout.
  uint32_t timeout_ms = 10000;
  /// HMAC-SHA256 key read from the variable named by `signing_secret_env`;
  /// empty: requests are not signed.
  std::string signing_secret;
  std::string signing_secret_env;
  http_retry_config retry;
  /// `cache = true`: with [performance] enable_caching, a successful call is
  /// remembered under its rendered request (method, URL, body, headers) and an
  /// identical request within the TTL is skipped (counted as a cache hit).
  bool cache = false;
  /// `cache_ttl_secs`: this action's TTL; absent: [redis] cache_ttl_secs (60).
  std::optional<uint32_t> cache_ttl_secs;
  /// `batch_size` > 1: up to this many events go in one request, a JSON array
  /// of their (rendered) bodies, each with its own idempotency key.
  uint32_t batch_size = 1;
  /// How long a batch that is not full waits for more events.
  uint32_t batch_max_wait_ms = 20;
};

/// `[[observers.actions]]` with `type = "slack"` (incoming webhook).
struct slack_action_config {
  /// Incoming-webhook URL, inline or read from `webhook_url_env`.
  std::string webhook_url;
  std::string webhook_url_env;
  /// Overrides of the webhook's defaults; empty: not sent.
  std::string channel;
  std::string username;
  std::string icon_emoji;
  /// Text template of the message (Slack mrkdwn).
  std::string message;
  uint32_t timeout_ms = 10000;
  http_retry_config retry;
};

/// How the SMTP connection is secured.
enum class smtp_security { none, starttls, tls };

/// `[[observers.actions]]` with `type = "email"` (SMTP).
struct email_action_config {
  std::string host;
  /// Default by security: 25 (none), 587 (starttls), 465 (tls).
  uint32_t port = 0;
  smtp_security security = smtp_security::starttls;
  /// Envelope and header sender: a bare address.
  std::string from;
  /// Recipients (bare addresses), at least one.
  std::vector<std::string> to;
  /// Templates.
  std::string subject;
  std::string body;
  /// AUTH credentials, read from `username_env` / `password_env` at load.
  std::string username;
  std::string password;
  std::string username_env;
  std::string password_env;
  /// CA bundle for verifying the server; empty: the system's.
  std::string ca_file;
  bool verify_tls = true;
  uint32_t timeout_ms = 30000;
  /// "smtp://host:port" or "smtps://host:port".
  std::string url() const;
};

/// `[[observers.actions]]` with `type = "database"`: calls
/// `<function>(envelope jsonb, params jsonb)`.
struct database_action_config {
  /// "name" or "schema.name", each part an identifier.
  std::string function;
  /// `params` as a JSON object text (string leaves may be templates).
  std::string params_json = "{}";
  /// Connection string: [database] url, or the variable named by url_env.
  std::string url;
  std::string url_env;
  uint32_t timeout_ms = 10000;
  /// `function` with each part double-quoted for SQL.
  std::string quoted_function() const;
};

/// `[[observers.actions]]` with `type = "log"`.
struct log_action_config {
  std::string level = "info";
  std::string message;
};

/// `[[observers.actions]]` with `type = "nats"`: publishes a rendered payload
/// to a JetStream subject with `Nats-Msg-Id` = the attempt's idempotency key,
/// so a retried attempt is stored once within the stream's duplicate window
/// (runtime/exec/nats_action.cpp, docs/nats.md "The nats action").
struct nats_action_config {
  /// Subject template (`orders.{{ entity_id }}`); a literal subject (and the
  /// literal text around the holes) has no spaces and no wildcards.
  std::string subject;
  /// Payload template (as a webhook body); empty: the event envelope as JSON.
  std::string body_template;
  /// Server URLs, comma-separated (nats://host:port, tls://host:port). When
  /// the key is absent: the [nats] url, whose credentials and TLS files then
  /// apply too (the fields below); without [nats] the key is required.
  std::string url;
  /// Credentials and TLS of [nats] (copied only when `url` came from there).
  std::string user, password, token;
  std::string credentials_file;
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  /// When set, the server refuses the message unless `subject` is stored in
  /// this stream (Nats-Expected-Stream): a final failure.
  std::string stream;
  /// Acknowledgment timeout of one attempt.
  uint32_t timeout_ms = 5000;
  /// `url` split at commas, spaces trimmed, empty entries dropped.
  std::vector<std::string> urls() const;
};

/// One server URL of a NATS URL list: scheme (nats or tls), host (IPv6
/// without brackets) and port (4222 when absent); credentials are dropped.
struct nats_server_address {
  std::string scheme;
  std::string host;
  uint16_t port = 4222;
  /// "scheme://host:port" (brackets around an IPv6 host), no credentials: a
  /// circuit-breaker key and metrics label.
  std::string endpoint() const;
};
/// Why `s` cannot be the subject of a published message (empty, an empty
/// token, whitespace or control characters, a wildcard), or nullopt.
std::optional<std::string> check_nats_subject(std::string_view s);
/// Parses "nats://[user[:password]@]host[:port][/]" or tls://...; nullopt on
/// anything else (`why`, when given, says what is wrong without echoing a
/// password).
std::optional<nats_server_address> parse_nats_url(const std::string& url,
                                                  std::string* why = nullptr);

/// One action of an observer. Exactly one of the typed members is set,
/// according to `type`.
struct action_config {
  std::string type;  // "webhook" | "slack" | "email" | "database" | "log" | "nats"
  std::optional<webhook_action_config> webhook;
  std::optional<slack_action_config> slack;
  std::optional<email_action_config> email;
  std::optional<database_action_config> database;
  std::optional<log_action_config> log;
  /// `type = "nats"`: a JetStream publish (nats_action_config).
  std::optional<nats_action_config> nats;
  /// Where the action was defined, for error messages: "observers[2].actions[0]".
  std::string where;
  /// Run through the persistent job queue ([job_queue]): the event counts as
  /// done for this action once the job is durably enqueued. Effective value:
  /// the `async` key when given, else async_by_default(type, queue enabled).
  bool async = false;
};

/// Whether an action of `type` without an explicit `async` key runs through
/// the job queue: email (slow SMTP round trips) does whenever the queue is
/// enabled; every other type runs inline.
bool async_by_default(const std::string& type, bool job_queue_enabled);

/// `[[observers]]`.
struct observer_config {
  /// Stable name used in idempotency keys, the DLQ and metrics. Defaults to
  /// "observer-<index>" (1-based) when absent.
  std::string name;
  /// "INSERT" | "UPDATE" | "DELETE" | "CUSTOM" | "READ" (backfill) | "*"
  std::string event_type;
  /// Entity type (change-log object_type), or "*" for any.
  std::string entity;
  /// JMESPath condition over the event envelope; empty means always.
  std::string condition;
  std::vector<action_config> actions;
  retry_config retry;
};

/// `[database]`.
struct database_config {
  /// libpq connection string or postgresql:// URL.
  std::string url;
  /// `url_env` as configured: the name of the environment variable `url` was
  /// read from (empty when the url came inline or from FRAISEQL_DATABASE_URL /
  /// DATABASE_URL).
  std::string url_env;
  /// Connection attempts back off up to this delay.
  uint32_t reconnect_max_delay_ms = 5000;
};

/// `[transport]`.
struct transport_config {
  /// "postgres" (listener -> executors in one process) or "nats" (bridge and/or
  /// workers around a JetStream stream). "in_memory" is a spec name this
  /// build refuses.
  std::string transport = "postgres";
  /// nats: run the PostgreSQL -> NATS bridge in this process.
  bool run_bridge = false;
  /// nats: run workers (pull consumers -> executors) in this process.
  bool run_executors = true;
};

/// `[nats]`: the JetStream bus between bridges and workers
/// (docs/nats.md). Used only with transport = "nats".
struct nats_config {
  /// Server URLs, comma-separated (nats://host:port, tls://host:port).
  std::string url = "nats://127.0.0.1:4222";
  /// Credentials, each resolved at load time from the named variable and
  /// never printed: user + password, or a token; or a .creds file.
  std::string user_env;
  std::string password_env;
  std::string token_env;
  std::string user, password, token;  // resolved
  std::string credentials_file;
  /// TLS: CA bundle (empty: the system's), client certificate and key.
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  /// The stream and its subjects: <subject_prefix>.<source>.<partition>.<entity>.<op>
  std::string stream = "fraiseql_events";
  std::string subject_prefix = "fraiseql";
  /// Stream replicas (1, or 3 on a 3-server cluster).
  uint32_t replicas = 1;
  /// A Msg-Id seen within this window is stored once.
  uint32_t duplicate_window_secs = 120;
  /// Stream retention by age (0: keep until limits).
  uint32_t max_age_secs = 7 * 86400;
  /// Partitions of the subject space; each has one durable consumer
  /// (<consumer>_<p>) and one owning worker at a time.
  uint32_t partitions = 16;
  /// This source's name in subjects and Msg-Ids; empty: the database name of
  /// [database] url. Unique per bridged database.
  std::string source_name;
  /// Bridge: a publish not acknowledged within this is sent again.
  uint32_t publish_ack_timeout_ms = 5000;
  /// Bridge: publishes awaiting their ack at most (also bounded by [listener]
  /// max_in_flight). nats.c keeps ~3 KB per unacked publish until its ack
  /// timeout: 4096 keeps the bridge near 40 MB at ~50-80k events/s.
  uint32_t publish_window = 4096;
  /// Durable consumer name (prefix of the per-partition consumers).
  std::string consumer = "fraiseql_observer_worker_group";
  /// Unacked this long: redelivered (workers send in-progress while busy).
  uint32_t ack_wait_ms = 30000;
  /// Deliveries before an event goes to the DLQ instead of running again.
  uint32_t max_deliver = 5;
  /// Per partition consumer: delivered, unacked messages at most.
  uint32_t max_ack_pending = 1000;
  /// Messages per fetch at most (never more than free slots).
  uint32_t fetch_batch = 100;
  /// Partition ownership lease (KV bucket <stream>_owners); renewed every third.
  uint32_t partition_lease_ms = 10000;
  /// Worker name in the ownership bucket; empty: [cluster] node_name, else host:pid.
  std::string worker_name;
  /// `url` split at commas, blanks trimmed.
  std::vector<std::string> urls() const;
};

/// A comma-separated list of NATS URLs, each trimmed; empty entries dropped.
std::vector<std::string> split_nats_urls(const std::string& url);

/// `[listener]`.
struct listener_config {
  /// Identifies this source in observer_checkpoints.
  std::string listener_id = "default";
  /// Rows read per query.
  uint32_t batch_size = 1000;
  /// Fallback poll interval while asleep (a lost NOTIFY costs at most this).
  uint32_t poll_interval_ms = 1000;
  /// Bound on events read but not yet finished (backpressure window).
  uint32_t max_in_flight = 10000;
  /// Bound on the bytes events hold while anything in the node references
  /// them (the byte budget); at least one event is read when none is in flight.
  uint32_t max_bytes_in_flight = 64u << 20;
  /// A change-log row whose body (object_data plus object_data_before, as
  /// text) is larger goes to the DLQ unread, with its size and this limit.
  uint32_t max_event_bytes = 16u << 20;
};

/// `[checkpoint]`.
struct checkpoint_config {
  /// Save after this many finished events...
  uint32_t batch_size = 100;
  /// ...or after this long, whichever comes first.
  uint32_t interval_ms = 200;
};

/// `[redis]` (PostgreSQL + Redis topology). FRAISEQL_REDIS_* override it;
/// FRAISEQL_REDIS_URL alone enables it.
struct redis_config {
  /// redis://[[user]:password@]host[:port][/db] (rediss:// is refused: no TLS
  /// in this build's hiredis).
  std::string url;
  uint32_t pool_size = 10;
  uint32_t connect_timeout_secs = 5;
  uint32_t command_timeout_secs = 2;
  /// How long a finished event is remembered (`event:<id>` = "done").
  uint32_t dedup_window_secs = 300;
  /// Default TTL of `action_result:<key>` entries.
  uint32_t cache_ttl_secs = 60;
  /// Lifetime of a claim (`event:<id>` = owner); extended every third of it
  /// while the event runs. A node that dies holding a claim delays the
  /// redelivery of that event by at most this.
  uint32_t claim_ttl_secs = 30;
  /// "fail_open" (run without dedup while Redis is down) or "fail_closed"
  /// (pause until Redis answers).
  std::string failure_policy = "fail_open";
};

/// `[performance]`.
struct performance_config {
  /// Needs [redis]: claims are shared by every node.
  bool enable_dedup = false;
  /// On Redis with [redis], else an in-process LRU cache (cache_capacity).
  bool enable_caching = false;
  /// Entries of the in-process result cache (used without [redis]).
  uint32_t cache_capacity = 10000;
  bool enable_concurrent = true;
  /// Attempts in flight at most, across all endpoints. Unset, it is
  /// `fixed_concurrency_default` with [adaptive_concurrency] off and
  /// `adaptive_concurrency_default` with it on (the loader settles it).
  uint32_t max_concurrent_actions = fixed_concurrency_default;
  uint32_t concurrent_timeout_ms = 30000;

  /// Not a key: messages a NATS worker holds at once (its fetch window),
  /// settled by the loader: max_concurrent_actions when set (or with
  /// adaptive concurrency off), else fixed_concurrency_default. The window
  /// also bounds what a crash redelivers and what a partition hand-over
  /// waits for, so it does not follow adaptive concurrency's global cap.
  uint32_t worker_window = fixed_concurrency_default;

  static constexpr uint32_t fixed_concurrency_default = 10;
  static constexpr uint32_t adaptive_concurrency_default = 1000;
};

/// `[adaptive_concurrency]` (issue 19): a learnt in-flight limit per endpoint
/// (the breaker's key), under [performance] max_concurrent_actions; see
/// runtime/core/adaptive_limit.hpp for the algorithm.
struct adaptive_concurrency_config {
  bool enabled = true;
  uint32_t min_limit = 1;
  uint32_t max_limit = 1000;
  uint32_t initial_limit = 10;
  double tolerance = 0.1;
  /// Added to the tolerated latency: jitter below it is not queueing.
  uint32_t latency_slack_us = 2000;
  double backoff = 0.5;
  double smoothing = 0.5;
  uint32_t window_samples = 10;
  uint32_t baseline_interval_ms = 60000;
  uint32_t baseline_samples = 5;
  /// Bound on limiters kept (least recently used idle ones are forgotten).
  uint32_t max_endpoints = 4096;
};

/// `[circuit_breaker]`: one breaker per endpoint (spec phase 8.8); see
/// runtime/core/circuit_breaker.hpp for the state machine.
struct circuit_breaker_config {
  bool enabled = true;
  /// Failure ratio in (0, 1] over the last `sample_size` calls that opens it.
  double failure_threshold = 0.5;
  /// Ratio in (0, 1] of successful half-open probes that closes it.
  double success_threshold = 0.8;
  /// Time open before probing (half-open).
  uint32_t timeout_ms = 30000;
  /// Calls observed (sliding window) before any state change.
  uint32_t sample_size = 10;
  /// Probe calls per half-open phase (also the bound on probes in flight).
  uint32_t half_open_probes = 5;
};

/// `[shutdown]`.
struct shutdown_config {
  /// How long a graceful stop waits for in-flight events before giving up
  /// (unfinished events are redelivered after restart, never lost).
  uint32_t timeout_ms = 30000;
};

/// `[failover]`: leadership of a listener id among nodes that share it.
struct failover_config {
  /// How often the leader renews its lease (the spec's health_check_interval).
  uint32_t health_check_interval_ms = 1000;
  /// How long a lease lasts without renewal (the spec's failover_threshold): a
  /// frozen or cut-off leader is replaced this long after its last renewal,
  /// and stops acting as leader before then.
  uint32_t failover_threshold_ms = 5000;
};

/// `[logging]`.
struct logging_config {
  /// trace | debug | info | warn | error. RUST_LOG / FRAISEQL_LOG override.
  std::string level = "info";
  /// "text" or "json".
  std::string format = "text";
};

/// `[metrics]`: Prometheus text exposition at http://bind:port/metrics, plus
/// the /healthz and /readyz probes on the same port.
struct metrics_config {
  bool enabled = false;
  /// Loopback by default: metrics name observers and endpoints.
  std::string bind = "127.0.0.1";
  /// 0 picks a free port (logged at start).
  uint32_t port = 9464;
  /// /readyz fails once events have waited this long for a checkpoint save
  /// (0: never). Matches the OldCheckpoint alert's 300 s.
  uint32_t readiness_max_checkpoint_age_ms = 300000;
};

/// `[control]`: the typed control actor published over CAF's middleman.
/// On by default, on loopback; without a configured token the node generates
/// one and writes it, owner-only, to the runtime directory
/// (runtime/config/control_token.hpp), where observerctl reads it.
struct control_config {
  bool enabled = true;
  /// Loopback by default. Any other address requires TLS and a token.
  std::string bind = "127.0.0.1";
  /// 0 picks a free port (logged at start).
  uint32_t port = 7465;
  /// Whether `port` was set (file): when it was not and the default port is
  /// taken (another node on this host), the node listens on a free port.
  bool port_configured = false;
  /// Directory of the generated token file; empty: the default
  /// (control_runtime_dir()).
  std::string runtime_dir;
  /// Name of the environment variable holding the auth token (as configured).
  std::string token_env;
  /// File holding the auth token (as configured; must not be group/other readable).
  std::string token_file;
  /// The token itself, resolved at load time from token_env or token_file;
  /// never read from the config file, never printed. Empty: the node
  /// generates one at start and writes it to the runtime directory.
  std::string token;
  /// PEM files for CAF's OpenSSL module: this node's certificate and key and
  /// the CA that signs peers (observerctl's client certificate is verified).
  std::string tls_certificate;
  std::string tls_key;
  std::string tls_ca;
  /// Events kept in the in-memory debug journal (`debug-event`); 0 disables it.
  uint32_t journal_size = 1000;
  bool tls() const { return !tls_certificate.empty(); }
};
/// `[cluster]`: this node's failover coordinator, which joins the others over
/// CAF's middleman (actors/cluster). The membership view is advisory: who
/// leads rests on the PostgreSQL lease and its fence.
struct cluster_config {
  bool enabled = false;
  /// Unique in the cluster; empty: this host's name.
  std::string node_name;
  /// Loopback by default. A non-loopback bind or seed requires TLS and a token.
  std::string bind = "127.0.0.1";
  uint32_t port = 7480;
  /// host:port of other nodes' coordinators (this node's own address may be
  /// listed: one list for every node).
  std::vector<std::string> seeds;
  /// Heartbeats between coordinators (and CAF's middleman heartbeat).
  uint32_t heartbeat_interval_ms = 1000;
  /// A peer not heard from this long is unreachable (and CAF drops its
  /// connection); 0: the [failover] failover_threshold_ms.
  uint32_t connection_timeout_ms = 0;
  /// As in [control]: the token is resolved at load time, never printed.
  std::string token_env;
  std::string token_file;
  std::string token;
  std::string tls_certificate;
  std::string tls_key;
  std::string tls_ca;
  bool tls() const { return !tls_certificate.empty(); }
};

/// `[change_log]`: retention of core.tb_entity_change_log (actors/history/pruner).
struct change_log_config {
  /// Delete rows every checkpoint has passed once they are older than
  /// retention_hours. Off: the log grows until someone deletes rows.
  bool prune = true;
  uint32_t retention_hours = 168;
  uint32_t prune_interval_secs = 60;
  uint32_t prune_batch_size = 5000;
};

/// `[audit]`: the audit trail (actors/history/audit, docs/history.md).
struct audit_config {
  /// Record every routed event and every finished attempt (off the hot path).
  /// Off by default: it costs PostgreSQL ~35 µs of CPU per event, measured
  /// as -21% peak delivery on 2 cores (docs/performance.md, "Audit trail").
  bool enabled = false;
  /// "postgres" (observer_audit_* tables in the source database, searchable
  /// with observerctl search) or "elasticsearch" (Elasticsearch/OpenSearch _bulk).
  std::string backend = "postgres";
  /// Day partitions (postgres) older than this are dropped once finished.
  uint32_t retention_days = 90;
  /// Retention rounds this often.
  uint32_t retention_interval_secs = 3600;
  /// Bound on records waiting to be written; beyond it records are dropped
  /// and counted (delivery never waits for the audit trail).
  uint32_t queue_size = 100000;
  uint32_t queue_max_bytes = 64u << 20;
  /// Records per write (one multi-row INSERT per table).
  uint32_t batch_size = 2000;
  /// The writer takes what is queued this often.
  uint32_t flush_interval_ms = 200;
  /// Elasticsearch / OpenSearch: base URL, index prefix (one index per day:
  /// <index>-YYYY.MM.DD), the variable holding credentials ("user:password"
  /// for basic auth, anything else is sent as an ApiKey), bulk bounds.
  std::string elasticsearch_url;
  std::string elasticsearch_index = "fraiseql-audit";
  std::string elasticsearch_auth_env;
  uint32_t elasticsearch_bulk_max_docs = 1000;
  uint32_t elasticsearch_bulk_max_bytes = 5u << 20;
  uint32_t elasticsearch_timeout_ms = 10000;
  uint32_t elasticsearch_max_backoff_ms = 30000;
};

/// `[job_queue]`: the persistent queue of asynchronous actions (observer_jobs).
struct job_queue_config {
  bool enabled = false;
  /// Jobs running at the same time in this node.
  uint32_t workers = 4;
  /// Poll for due jobs this often (jobs enqueued by this node wake the runner
  /// at once; the poll finds retries due, expired leases and older jobs).
  uint32_t poll_interval_ms = 1000;
  /// Rows per claim query and per enqueue INSERT statement.
  uint32_t batch_size = 100;
  /// A claimed job is invisible to other claims this long; the runner renews
  /// the lease of running jobs every lease_ms / 3, so only a dead node's jobs
  /// expire (and become claimable again).
  uint32_t lease_ms = 30000;
};

/// What one process runs: from `--role` and [transport]
/// (resolve_roles, runtime/config/roles.hpp).
struct process_roles {
  /// transport "postgres": listener -> executors in one process.
  bool pipeline = true;
  /// transport "nats": the PostgreSQL -> NATS bridge.
  bool bridge = false;
  /// transport "nats": workers (pull consumers -> executors).
  bool workers = false;
};

struct config {
  /// The file it came from (for messages).
  std::string source;
  /// Set by resolve_roles; the default is the PostgreSQL pipeline.
  process_roles roles;
  database_config database;
  transport_config transport;
  /// Present when [nats] or FRAISEQL_NATS_URL is given.
  std::optional<nats_config> nats;
  listener_config listener;
  checkpoint_config checkpoint;
  performance_config performance;
  circuit_breaker_config circuit_breaker;
  adaptive_concurrency_config adaptive_concurrency;
  /// Present when [redis] or FRAISEQL_REDIS_URL is given.
  std::optional<redis_config> redis;
  shutdown_config shutdown;
  failover_config failover;
  logging_config logging;
  metrics_config metrics;
  control_config control;
  cluster_config cluster;
  change_log_config change_log;
  audit_config audit;
  job_queue_config job_queue;
  std::vector<observer_config> observers;
};

/// A configuration problem, located as precisely as the input allows.
struct config_error {
  std::string file;
  uint32_t line = 0;    // 1-based; 0 when not tied to a position (env vars)
  uint32_t column = 0;  // 1-based; 0 when unknown
  std::string key;      // dotted path: "observers[1].actions[0].url"
  std::string message;
  /// "file:line:col: key: message"
  std::string to_string() const;
};

/// Either a config or every error found (not just the first).
struct config_result {
  /// Accepted keys that have no effect in this configuration (each names the
  /// key and why); the configuration is valid all the same.
  std::vector<config_error> warnings;
  std::optional<config> value;
  std::vector<config_error> errors;
  explicit operator bool() const { return value.has_value(); }
};

}  // namespace fraiseql
