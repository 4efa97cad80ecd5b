// observerctl: operator tool for FraiseQL observer nodes.
//
// Installed also as `fraiseql-observers` (a symlink, the spec's name): help
// and --version name the program as it was invoked.
//
// Offline: `validate-config FILE [--detailed]`, `eval`. Live (over the node's
// CAF control plane, messages/control.hpp): status, metrics, dlq ..., debug-event, search.
//
// Exit codes (docs/operations.md):
//   0  success
//   1  the command failed (evaluation error, failed redrive, unknown DLQ id, ...)
//   2  usage or configuration error (bad arguments, invalid config/expression)
//   3  cannot connect to the node, or it speaks another protocol version
//   4  the node rejected the control token

#include "messages/control.hpp"
#include "runtime/config/control_token.hpp"
#include "runtime/config/loader.hpp"
#include "runtime/config/loopback.hpp"
#include "runtime/config/model.hpp"
#include "runtime/config/roles.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/expr/jmespath.hpp"
#include "runtime/expr/template.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace {

namespace json = boost::json;

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_connect = 3;
constexpr int exit_auth = 4;

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

// --- live commands ------------------------------------------------------------

struct connection_options {
  std::string node = "127.0.0.1:7465";
  std::string token;
  /// Where nodes on this host publish their generated tokens (empty: default).
  std::string runtime_dir;
  /// The token file the token came from, if it came from one.
  std::string token_file;
  /// Token files looked for in vain.
  std::vector<std::string> searched;
  std::string tls_cert, tls_key, tls_ca;
  std::string format = "text";
  double timeout_s = 30;
  uint32_t protocol = fraiseql::control_protocol_version;
  bool tls() const { return !tls_cert.empty() || !tls_key.empty() || !tls_ca.empty(); }
};

struct client_config : caf::actor_system_config {
  explicit client_config(const connection_options& o) {
    load<caf::io::middleman>();
    if (o.tls()) {
      load<caf::openssl::manager>();
      openssl_certificate = o.tls_cert;
      openssl_key = o.tls_key;
      openssl_cafile = o.tls_ca;
    }
    set("scheduler.max-threads", static_cast<size_t>(2));
    set("logger.verbosity", caf::atom("quiet"));
  }
};

/// Text or JSON failure report, then the exit code.
int fail(const connection_options& o, int rc, const std::string& code, const std::string& msg) {
  if (o.format == "json")
    std::cout << json::serialize(json::object{{"ok", false}, {"code", code}, {"error", msg}})
              << "\n";
  std::cerr << "error: " << msg << "\n";
  return rc;
}

void pretty(std::ostream& os, const json::value& v, int indent = 0) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  if (v.is_object() && !v.get_object().empty()) {
    os << "{\n";
    bool first = true;
    for (const auto& kv : v.get_object()) {
      if (!first) os << ",\n";
      first = false;
      os << pad << "  " << json::serialize(json::string(kv.key())) << ": ";
      pretty(os, kv.value(), indent + 2);
    }
    os << "\n" << pad << "}";
  } else if (v.is_array() && !v.get_array().empty()) {
    os << "[\n";
    bool first = true;
    for (const auto& x : v.get_array()) {
      if (!first) os << ",\n";
      first = false;
      os << pad << "  ";
      pretty(os, x, indent + 2);
    }
    os << "\n" << pad << "]";
  } else if (v.is_double()) {
    std::ostringstream d;  // 999 rather than 9.99E2
    d << std::setprecision(15) << v.get_double();
    os << d.str();
  } else {
    os << json::serialize(v);
  }
}

std::string str(const json::value& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_double()) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(1) << v.get_double();
    return os.str();
  }
  return json::serialize(v);
}

const json::value& at(const json::value& v, const char* k) {
  static const json::value null_value;
  if (!v.is_object()) return null_value;
  auto* p = v.get_object().if_contains(k);
  return p != nullptr ? *p : null_value;
}

/// A DLQ id as operators see it (`dlq-001`).
std::string ref(const json::value& v) {
  if (v.is_int64()) return fraiseql::dlq_ref(v.get_int64());
  if (v.is_uint64()) return fraiseql::dlq_ref(static_cast<int64_t>(v.get_uint64()));
  return str(v);
}

std::string shorten(std::string s, size_t n) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  if (s.size() > n) s = s.substr(0, n - 3) + "...";
  return s;
}

// Text renderings, one per command.
/// "Leader: listener-1 (3/3 healthy)" per listener id, as the spec shows it.
void print_leadership(const json::value& r) {
  const auto& rows = at(r, "leadership");
  if (!rows.is_array()) return;
  const bool many = rows.get_array().size() > 1;
  for (const auto& l : rows.get_array()) {
    const auto& leader = at(l, "leader");
    std::cout << "Leader: ";
    if (leader.is_null())
      std::cout << "none";
    else
      std::cout << str(leader)
                << (at(l, "leader_healthy").is_bool() && !at(l, "leader_healthy").get_bool()
                        ? ", not healthy"
                        : "");
    std::cout << " (" << str(at(l, "healthy")) << "/" << str(at(l, "members")) << " healthy)";
    if (many) std::cout << "  listener id " << str(at(l, "listener_id"));
    std::cout << "\n";
  }
}

void print_cluster(const json::value& c) {
  if (!at(c, "members").is_array()) return;
  const auto& members = at(c, "members").get_array();
  size_t healthy = 0;
  for (const auto& m : members)
    if (at(m, "healthy").is_bool() && at(m, "healthy").get_bool()) ++healthy;
  std::cout << "cluster:      " << members.size() << " nodes, " << healthy << " healthy\n";
  for (const auto& m : members) {
    std::cout << "  " << std::left << std::setw(16) << str(at(m, "name")) << std::setw(22)
              << str(at(m, "address")) << std::setw(9) << str(at(m, "state")) << " listener "
              << str(at(m, "listener_id")) << ", epoch " << str(at(m, "epoch"));
    if (at(m, "self").is_bool() && at(m, "self").get_bool())
      std::cout << ", this node";
    else
      std::cout << ", heartbeat " << str(at(m, "heartbeat_age_ms")) << " ms ago";
    if (!at(m, "backlog").is_null()) std::cout << ", backlog " << str(at(m, "backlog"));
    if (at(m, "reachable").is_bool() && !at(m, "reachable").get_bool())
      std::cout << ", UNREACHABLE";
    else if (at(m, "healthy").is_bool() && !at(m, "healthy").get_bool())
      std::cout << ", not healthy";
    std::cout << std::right << "\n";
  }
}

void print_status(const json::value& r) {
  print_leadership(r);
  std::cout << "node:         " << str(at(r, "node")) << "\n"
            << "listener id:  " << str(at(r, "listener_id")) << "\n"
            << "role:         " << str(at(r, "role")) << "\n";
  const auto& lease = at(r, "lease");
  if (!lease.is_null())
    std::cout << "leader:       " << str(at(lease, "holder")) << " (epoch "
              << str(at(lease, "epoch")) << ", since " << str(at(lease, "acquired_at")) << ")\n";
  std::cout << "uptime:       " << str(at(r, "uptime_seconds")) << " s\n";
  const auto& nats = at(r, "nats");
  if (nats.is_object()) {
    std::cout << "nats:         "
              << (at(nats, "connected").get_bool() ? "connected to " + str(at(nats, "url"))
                                                   : std::string("DISCONNECTED (reconnecting)"))
              << ", stream " << str(at(nats, "stream")) << ", " << str(at(nats, "partitions"))
              << " partitions\n";
    if (at(nats, "workers").is_bool() && at(nats, "workers").get_bool()) {
      std::string owned, members;
      for (const auto& p : at(nats, "owned").get_array())
        owned += (owned.empty() ? "" : " ") + str(p);
      for (const auto& m : at(nats, "members").get_array())
        members += (members.empty() ? "" : ", ") + str(m);
      std::cout << "worker:       " << str(at(nats, "worker_name")) << ", partitions "
                << (owned.empty() ? std::string("none") : owned) << " ("
                << at(nats, "owned").get_array().size() << " of " << str(at(nats, "partitions"))
                << "); workers: " << members
                << (at(nats, "ownership_ok").get_bool() ? "" : " (last ownership round FAILED)")
                << "\n";
    }
    if (str(at(r, "role")) == "worker") {
      // A worker reads no change log: no listener, checkpoint or backlog.
      const auto& inf = at(r, "in_flight");
      if (!inf.is_null())
        std::cout << "in flight:    " << str(at(inf, "events")) << " messages held, "
                  << str(at(inf, "attempts")) << " action attempts\n";
      const auto& ev = at(r, "events");
      if (!ev.is_null())
        std::cout << "events:       " << str(at(ev, "finished")) << " acked since start\n";
      std::cout << "dlq:          " << str(at(at(r, "dlq"), "pending")) << " pending\n";
      return;
    }
  }
  const auto& l = at(r, "listener");
  std::cout << "listener:     "
            << (l.is_null() ? std::string("not running on this node")
                : at(l, "healthy").is_bool()
                    ? (at(l, "healthy").get_bool() ? "healthy" : "unhealthy (database unreachable)")
                    : "unknown")
            << "\n";
  const auto& cp = at(r, "checkpoint");
  if (cp.is_null())
    std::cout << "checkpoint:   none saved yet\n";
  else
    std::cout << "checkpoint:   txid " << str(at(cp, "txid")) << " pk " << str(at(cp, "pk")) << ", "
              << str(at(cp, "events_total")) << " events, saved " << str(at(cp, "age_seconds"))
              << " s ago\n";
  if (!cp.is_null() && at(cp, "pending_txids").is_string() &&
      !at(cp, "pending_txids").get_string().empty())
    std::cout << "running then: " << str(at(cp, "pending_txids"))
              << " (txid:pk read so far; their rows are read when they commit)\n";
  std::cout << "backlog:      " << str(at(r, "backlog")) << "\n";
  const auto& inf = at(r, "in_flight");
  if (!inf.is_null())
    std::cout << "in flight:    " << str(at(inf, "events")) << " events, "
              << str(at(inf, "attempts")) << " action attempts; " << str(at(inf, "bytes"))
              << " bytes of events held (the debug journal's included)\n";
  const auto& ev = at(r, "events");
  if (!ev.is_null())
    std::cout << "events:       " << str(at(ev, "read")) << " read, " << str(at(ev, "finished"))
              << " finished since start\n";
  std::cout << "dlq:          " << str(at(at(r, "dlq"), "pending")) << " pending\n";
  print_cluster(at(r, "cluster"));
  const auto& brk = at(r, "breakers");
  if (brk.is_array()) {
    size_t not_closed = 0;
    for (const auto& b : brk.get_array())
      if (str(at(b, "state")) != "closed") ++not_closed;
    std::cout << "breakers:     " << brk.get_array().size() << " endpoints, " << not_closed
              << " not closed\n";
    for (const auto& b : brk.get_array()) {
      if (str(at(b, "state")) == "closed") continue;
      std::cout << "  " << str(at(b, "endpoint")) << ": " << str(at(b, "state")) << ", "
                << str(at(b, "failures")) << "/" << str(at(b, "calls")) << " failed, "
                << str(at(b, "rejected")) << " rejected, next probe in "
                << str(at(b, "retry_in_ms")) << " ms\n";
    }
  }
  const auto& obs = at(r, "observers");
  if (obs.is_array()) {
    std::cout << "observers:\n";
    for (const auto& o : obs.get_array()) {
      std::cout << "  " << str(at(o, "name")) << ": " << str(at(o, "event_type")) << " "
                << str(at(o, "entity"));
      if (!at(o, "condition").get_string().empty()) std::cout << " if " << str(at(o, "condition"));
      std::cout << "; actions:";
      for (const auto& a : at(o, "actions").get_array()) std::cout << " " << str(a);
      std::cout << "; max_attempts " << str(at(o, "max_attempts")) << "; dlq pending "
                << str(at(o, "dlq_pending")) << "\n";
    }
    const auto& j = at(r, "journal");
    std::cout << "journal:      " << str(at(j, "entries")) << " of " << str(at(j, "capacity"))
              << " events\n";
    const auto& lim = at(r, "limits");
    std::cout << "limits:       max_in_flight " << str(at(lim, "max_in_flight"))
              << ", max_bytes_in_flight " << str(at(lim, "max_bytes_in_flight"))
              << ", max_event_bytes " << str(at(lim, "max_event_bytes"))
              << ", max_concurrent_actions " << str(at(lim, "max_concurrent_actions"))
              << ", batch_size " << str(at(lim, "batch_size")) << "\n";
  }
}

void print_dlq_list(const json::value& r) {
  if (r.get_array().empty()) {
    std::cout << "no DLQ entries\n";
    return;
  }
  std::cout << std::left << std::setw(10) << "ID" << std::setw(10) << "STATUS" << std::setw(20)
            << "OBSERVER" << std::setw(12) << "ACTION" << std::setw(10) << "ATTEMPTS"
            << std::setw(34) << "CREATED"
            << "LAST ERROR\n";
  for (const auto& row : r.get_array())
    std::cout << std::left << std::setw(10) << ref(at(row, "id")) << std::setw(10)
              << str(at(row, "status")) << std::setw(20) << str(at(row, "observer_name"))
              << std::setw(12) << (str(at(row, "action_index")) + ":" + str(at(row, "action_type")))
              << std::setw(10) << str(at(row, "attempts")) << std::setw(34)
              << str(at(row, "created_at")) << shorten(str(at(row, "last_error")), 60) << "\n";
}

/// `search` hits as a table: events, or attempts with their event.
void print_search(const json::value& r) {
  const auto& hits = at(r, "hits").get_array();
  const bool attempts = str(at(r, "mode")) == "attempts";
  std::cout << hits.size() << (attempts ? " attempt(s)" : " event(s)") << " for "
            << str(at(r, "query")) << "\n";
  if (hits.empty()) return;
  if (!attempts) {
    std::cout << std::left << std::setw(29) << "TIMESTAMP" << std::setw(9) << "KIND"
              << std::setw(16) << "ENTITY" << std::setw(14) << "ENTITY ID" << std::setw(38)
              << "EVENT ID"
              << "OBSERVERS\n";
    for (const auto& h : hits) {
      std::string obs;
      if (at(h, "observers").is_array())
        for (const auto& o : at(h, "observers").get_array())
          obs += (obs.empty() ? "" : ",") + str(o);
      std::cout << std::left << std::setw(29) << str(at(h, "timestamp")) << std::setw(9)
                << str(at(h, "event_kind")) << std::setw(16)
                << shorten(str(at(h, "entity_type")), 15) << std::setw(14)
                << shorten(str(at(h, "entity_id")), 13) << std::setw(38) << str(at(h, "event_id"))
                << (obs.empty() ? "-" : obs) << "\n";
    }
    return;
  }
  std::cout << std::left << std::setw(29) << "ATTEMPT AT" << std::setw(16) << "ENTITY"
            << std::setw(38) << "EVENT ID" << std::setw(16) << "OBSERVER" << std::setw(14)
            << "ACTION" << std::setw(4) << "#" << std::setw(11) << "STATUS" << std::setw(6)
            << "HTTP" << std::setw(10) << "MS"
            << "ERROR\n";
  for (const auto& h : hits) {
    char ms[32];
    std::snprintf(ms, sizeof ms, "%.1f",
                  at(h, "latency_ms").is_number() ? at(h, "latency_ms").to_number<double>() : 0.0);
    const auto http = at(h, "http_status");
    std::cout << std::left << std::setw(29) << str(at(h, "attempt_at")) << std::setw(16)
              << shorten(str(at(h, "entity_type")) + ":" + str(at(h, "entity_id")), 15)
              << std::setw(38) << str(at(h, "event_id")) << std::setw(16)
              << shorten(str(at(h, "observer")), 15) << std::setw(14)
              << (str(at(h, "action_index")) + ":" + str(at(h, "action_type"))) << std::setw(4)
              << str(at(h, "attempt")) << std::setw(11) << str(at(h, "status")) << std::setw(6)
              << (http.is_null() ? "-" : str(http)) << std::setw(10) << ms
              << (at(h, "error").is_null() ? "" : shorten(str(at(h, "error")), 50)) << "\n";
  }
}

void print_dlq_show(const json::value& r) {
  for (const char* k : {"id", "status", "event_id", "observer_name", "action_index", "action_type",
                        "attempts", "retry_count", "idempotency_key", "first_attempt_at",
                        "last_attempt_at", "created_at", "updated_at", "last_error"})
    std::cout << std::left << std::setw(18) << (std::string(k) + ":")
              << (std::string(k) == "id" ? ref(at(r, k)) : str(at(r, k))) << "\n";
  std::cout << "event:\n";
  pretty(std::cout, at(r, "event"), 0);
  std::cout << "\n";
}

void print_redrive(const json::value& r) {
  std::cout << "DLQ entry " << ref(at(r, "id")) << " (observer " << str(at(r, "observer"))
            << ", action " << str(at(r, "action")) << "): " << str(at(r, "outcome")) << " after "
            << str(at(r, "attempts")) << " attempt(s)";
  if (!at(r, "error").is_null()) std::cout << ": " << str(at(r, "error"));
  std::cout << "\n";
}

void print_retry_all(const json::value& r) {
  if (at(r, "dry_run").is_bool()) {
    const auto& ids = at(r, "would_retry").get_array();
    std::cout << "dry run: would retry " << ids.size() << " pending DLQ entr"
              << (ids.size() == 1 ? "y" : "ies");
    for (const auto& id : ids) std::cout << " " << ref(id);
    std::cout << "\n";
    return;
  }
  for (const auto& x : at(r, "results").get_array()) print_redrive(x);
  std::cout << "retried " << str(at(r, "retried")) << ": " << str(at(r, "resolved"))
            << " resolved, " << str(at(r, "failed")) << " failed\n";
}

/// "<id> at <time> (txid T, pk P)" of an event the node described.
std::string event_text(const json::value& e) {
  return str(at(e, "id")) + " at " + str(at(e, "timestamp")) + " (txid " + str(at(e, "txid")) +
         ", pk " + str(at(e, "pk")) + ")";
}

void print_replay(const json::value& r) {
  const auto events = str(at(r, "events"));
  if (at(r, "dry_run").is_bool()) {
    std::cout << "dry run: would replay " << events << " event(s) of listener "
              << str(at(r, "listener_id")) << "\n"
              << "  first: " << event_text(at(r, "first")) << "\n"
              << "  last:  " << event_text(at(r, "last")) << "\n"
              << "  per observer (conditions evaluated now):\n";
    for (const auto& o : at(r, "observers").get_array())
      std::cout << "    " << std::left << std::setw(24) << str(at(o, "observer"))
                << str(at(o, "events")) << " event(s)\n";
    std::cout << "  matching no observer: " << str(at(r, "unmatched")) << "\n"
              << "  actions that would run: " << str(at(r, "actions")) << "\n"
              << "nothing was delivered\n";
    return;
  }
  const auto& row = at(r, "replay");
  if (at(r, "created").is_bool() && !at(r, "created").get_bool()) {
    std::cout << "replay " << str(at(row, "id")) << " of this range was already requested at "
              << str(at(row, "created_at")) << " (status " << str(at(row, "status")) << ", "
              << str(at(row, "events_written")) << " of " << str(at(row, "events_total"))
              << " events written): not queued again; pass --again to replay once more\n";
    return;
  }
  std::cout << "replay " << str(at(row, "id")) << " queued: " << events << " event(s)"
            << (at(r, "observer").is_null() ? "" : " for observer " + str(at(r, "observer")))
            << "\n  first: " << event_text(at(r, "first"))
            << "\n  last:  " << event_text(at(r, "last")) << "\n"
            << "the node leading listener " << str(at(r, "listener_id"))
            << " re-delivers them with their original idempotency keys and \"replay\" in the "
               "envelope (progress: replay --status)\n";
}

void print_replay_status(const json::value& r) {
  if (r.get_array().empty()) {
    std::cout << "no replays\n";
    return;
  }
  std::cout << std::left << std::setw(6) << "ID" << std::setw(9) << "STATUS" << std::setw(10)
            << "EVENTS" << std::setw(10) << "WRITTEN" << std::setw(20) << "OBSERVER"
            << std::setw(34) << "CREATED"
            << "ERROR\n";
  for (const auto& row : r.get_array())
    std::cout << std::left << std::setw(6) << str(at(row, "id")) << std::setw(9)
              << str(at(row, "status")) << std::setw(10) << str(at(row, "events_total"))
              << std::setw(10) << str(at(row, "events_written")) << std::setw(20)
              << (at(row, "observer_name").is_null() ? "*" : str(at(row, "observer_name")))
              << std::setw(34) << str(at(row, "created_at"))
              << (at(row, "error").is_null() ? "" : shorten(str(at(row, "error")), 60)) << "\n";
}

void print_backfill(const json::value& r) {
  const auto& b = at(r, "backfill");
  std::cout << "backfill " << str(at(b, "id")) << " of " << str(at(b, "table_name"))
            << " queued: entity " << str(at(b, "entity")) << ", key " << str(at(b, "key_column"))
            << ", chunks of " << str(at(b, "batch_size")) << " rows"
            << (at(b, "where_sql").is_null() ? "" : ", where " + str(at(b, "where_sql"))) << "\n"
            << "the leader emits each row as a READ event (progress: backfill --status)\n";
}

void print_backfill_status(const json::value& r) {
  if (r.get_array().empty()) {
    std::cout << "no backfills\n";
    return;
  }
  std::cout << std::left << std::setw(6) << "ID" << std::setw(24) << "TABLE" << std::setw(9)
            << "STATUS" << std::setw(10) << "ROWS" << std::setw(8) << "CHUNKS" << std::setw(14)
            << "LAST KEY" << std::setw(9) << "RETRIES" << std::setw(34) << "CREATED"
            << "ERROR\n";
  for (const auto& row : r.get_array())
    std::cout << std::left << std::setw(6) << str(at(row, "id")) << std::setw(24)
              << str(at(row, "table_name")) << std::setw(9) << str(at(row, "status"))
              << std::setw(10) << str(at(row, "rows_emitted")) << std::setw(8)
              << str(at(row, "chunks_done")) << std::setw(14) << str(at(row, "last_key"))
              << std::setw(9) << str(at(row, "chunk_retries")) << std::setw(34)
              << str(at(row, "created_at"))
              << (at(row, "error").is_null() ? "" : shorten(str(at(row, "error")), 60)) << "\n";
}

void print_dlq_stats(const json::value& r) {
  std::cout << "total:    " << str(at(r, "total")) << "\n"
            << "pending:  " << str(at(r, "pending")) << "\n"
            << "retrying: " << str(at(r, "retrying")) << "\n"
            << "resolved: " << str(at(r, "resolved")) << "\n"
            << "removed:  " << str(at(r, "removed")) << "\n"
            << "oldest pending: " << str(at(r, "oldest_pending")) << "\n";
  if (at(r, "by_observer").is_array()) {
    std::cout << "by observer (pending / total):\n";
    for (const auto& x : at(r, "by_observer").get_array())
      std::cout << "  " << std::left << std::setw(24) << str(at(x, "observer"))
                << str(at(x, "pending")) << " / " << str(at(x, "total")) << "\n";
  }
  if (at(r, "by_error").is_array()) {
    std::cout << "by error (pending):\n";
    for (const auto& x : at(r, "by_error").get_array())
      std::cout << "  " << std::right << std::setw(6) << str(at(x, "pending")) << "  "
                << shorten(str(at(x, "error")), 100) << "\n";
  }
}

std::string percent(const json::value& rate) {
  if (!rate.is_double()) return "- (no lookups yet)";
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << rate.get_double() * 100 << "%";
  return os.str();
}

void print_cache_stats(const json::value& r) {
  const auto backend = str(at(r, "backend"));
  if (backend == "off") {
    std::cout << "result cache: off ([performance] enable_caching = false)\n";
  } else {
    std::cout << "result cache: " << (backend == "redis" ? "Redis" : "process memory (LRU)")
              << ", default TTL " << at(r, "ttl_ms").to_number<int64_t>() / 1000 << " s\n"
              << "hit rate:     " << percent(at(r, "hit_rate")) << " (" << str(at(r, "hits"))
              << " hits, " << str(at(r, "misses")) << " misses since start)\n"
              << "size:         " << str(at(r, "entries")) << " entries";
    if (!at(r, "capacity").is_null()) std::cout << " of " << str(at(r, "capacity"));
    std::cout << "\n"
              << "evictions:    " << str(at(r, "evictions"))
              << (backend == "redis" ? " (Redis server, all keys)" : "") << "\n"
              << "expired:      " << str(at(r, "expired"))
              << (backend == "redis" ? " (Redis server, all keys)" : "") << "\n";
    if (!at(r, "usage_error").is_null())
      std::cout << "              (size unknown: " << str(at(r, "usage_error")) << ")\n";
  }
  const auto& redis = at(r, "redis");
  if (redis.is_null())
    std::cout << "redis:        not configured\n";
  else
    std::cout << "redis:        " << str(at(redis, "url")) << ": "
              << (at(redis, "healthy").is_bool() && at(redis, "healthy").get_bool()
                      ? std::string("healthy (answers PING)")
                      : "unavailable: " + str(at(redis, "error")))
              << "\n";
  if (backend == "off") return;
  std::cout << "per observer:\n";
  for (const auto& o : at(r, "observers").get_array()) {
    std::cout << "  " << std::left << std::setw(24) << str(at(o, "observer"));
    if (at(o, "cached_actions").to_number<int64_t>() == 0)
      std::cout << "no cached actions\n";
    else
      std::cout << percent(at(o, "hit_rate")) << " (" << str(at(o, "hits")) << " hits, "
                << str(at(o, "misses")) << " misses; " << str(at(o, "cached_actions"))
                << " cached action(s))\n";
  }
}

void print_debug_event(const json::value& r) {
  const auto& e = at(r, "envelope");
  std::cout << "event " << str(at(r, "event_id")) << ": " << str(at(e, "event_type")) << " "
            << str(at(e, "entity_type")) << " " << str(at(e, "entity_id")) << " at "
            << str(at(e, "timestamp")) << "\n"
            << "source: "
            << (str(at(r, "source")) == "journal"
                    ? "journal (routed by this node at " + str(at(r, "routed_at")) + ")"
                    : std::string(
                          "change log (not in this node's journal: observers re-evaluated now)"))
            << "\n"
            << "envelope:\n";
  pretty(std::cout, e, 0);
  std::cout << "\nobservers:\n";
  const auto& obs = at(r, "observers").get_array();
  if (obs.empty()) std::cout << "  (none has a matching event_type/entity filter)\n";
  for (const auto& o : obs) {
    std::cout << "  " << str(at(o, "observer")) << ": " << str(at(o, "verdict"));
    if (!at(o, "condition").is_null())
      std::cout << " (condition " << str(at(o, "condition")) << " -> "
                << str(at(o, "condition_result")) << ")";
    std::cout << "\n";
    if (at(o, "actions").is_array())
      for (const auto& a : at(o, "actions").get_array()) {
        std::cout << "    action " << str(at(a, "action")) << " (" << str(at(a, "type"))
                  << "): " << str(at(a, "state")) << " after " << str(at(a, "attempts"))
                  << " attempt(s)";
        if (!at(a, "last_error").is_null())
          std::cout << "; last error: " << str(at(a, "last_error"));
        std::cout << "\n";
      }
  }
  const auto& dlq = at(r, "dlq").get_array();
  std::cout << "dlq:" << (dlq.empty() ? " no entries" : "") << "\n";
  for (const auto& d : dlq)
    std::cout << "  " << ref(at(d, "id")) << " " << str(at(d, "status")) << " "
              << str(at(d, "observer_name")) << " action " << str(at(d, "action_index")) << ", "
              << str(at(d, "attempts")) << " attempts: " << shorten(str(at(d, "last_error")), 80)
              << "\n";
}

void print_history(const json::value& r) {
  if (r.get_array().empty()) std::cout << "journal is empty\n";
  for (const auto& e : r.get_array()) {
    std::cout << str(at(e, "routed_at")) << "  " << str(at(e, "event_id")) << "  "
              << str(at(e, "event_type")) << " " << str(at(e, "entity_type")) << " "
              << str(at(e, "entity_id")) << "  matched:";
    const auto& m = at(e, "matched").get_array();
    if (m.empty()) std::cout << " none";
    for (const auto& x : m) std::cout << " " << str(x);
    if (at(e, "condition_errors").to_number<int64_t>() > 0)
      std::cout << "  condition errors: " << str(at(e, "condition_errors"));
    const auto& st = at(e, "actions").get_object();
    if (!st.empty()) {
      std::cout << "  actions:";
      for (const auto& kv : st) std::cout << " " << str(kv.value()) << " " << kv.key();
    }
    std::cout << "\n";
  }
}

/// No token given and the node on this host: the token the node generated and
/// wrote, owner-only, to its runtime directory (control-PORT.token). Returns an
/// exit code when such a file exists but cannot be read.
std::optional<int> discover_token(connection_options& o, const std::string& host, uint16_t port) {
  if (!o.token.empty() || !fraiseql::is_loopback_address(host)) return std::nullopt;
  for (const auto& dir : fraiseql::control_runtime_dirs(o.runtime_dir)) {
    const auto path = fraiseql::control_token_path(dir, port);
    if (::access(path.c_str(), F_OK) != 0) {
      o.searched.push_back(path);
      continue;
    }
    std::ifstream in(path);
    std::string token;
    if (!in || !std::getline(in, token) || token.empty())
      return fail(o, exit_auth, "auth",
                  "cannot read the node's token file " + path + ": " +
                      (::access(path.c_str(), R_OK) != 0 ? std::string(std::strerror(errno))
                                                         : std::string("empty")) +
                      " (run as the node's user or root, or set FRAISEQL_CONTROL_TOKEN)");
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    o.token = token;
    o.token_file = path;
    return std::nullopt;
  }
  return std::nullopt;
}

/// Connects, checks the protocol version, sends one command, renders the reply.
int run_remote(connection_options o, const std::string& command, const json::object& args) {
  auto colon = o.node.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return fail(o, exit_usage, "usage", "--node must be HOST:PORT (got '" + o.node + "')");
  std::string host = o.node.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long port = 0;
  try {
    size_t used = 0;
    port = std::stoul(o.node.substr(colon + 1), &used);
    if (used != o.node.size() - colon - 1 || port == 0 || port > 65535) throw std::out_of_range("");
  } catch (const std::exception&) {
    return fail(o, exit_usage, "usage", "--node: invalid port in '" + o.node + "'");
  }
  if (o.tls() && (o.tls_cert.empty() || o.tls_key.empty() || o.tls_ca.empty()))
    return fail(o, exit_usage, "usage", "TLS needs --tls-cert, --tls-key and --tls-ca together");
  if (auto rc = discover_token(o, host, static_cast<uint16_t>(port))) return *rc;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  // A peer that never answers (a TLS node reached without TLS, a firewall)
  // would block CAF's connect forever: give up after the timeout.
  std::thread([o, timeout] {
    std::this_thread::sleep_for(timeout + std::chrono::seconds(2));
    std::cerr << "error: no answer from " << o.node << " within " << o.timeout_s
              << " s (is it a TLS node reached without --tls-*, or the reverse?)\n";
    std::_Exit(exit_connect);
  }).detach();

  client_config cfg{o};
  caf::actor_system sys{cfg};
  auto remote = o.tls() ? caf::openssl::remote_actor<fraiseql::control_actor>(
                              sys, host, static_cast<uint16_t>(port))
                        : sys.middleman().remote_actor<fraiseql::control_actor>(
                              host, static_cast<uint16_t>(port));
  if (!remote)
    return fail(
        o, exit_connect, "connect",
        "cannot connect to the control plane at " + o.node + ": " + sys.render(remote.error()));
  caf::scoped_actor self{sys};
  uint32_t server_version = 0;
  std::string problem;
  self->request(*remote, timeout, fraiseql::hello_atom::value, o.protocol)
      .receive([&](uint32_t v, const std::string&) { server_version = v; },
               [&](caf::error& e) { problem = sys.render(e); });
  if (!problem.empty())
    return fail(o, exit_connect, "connect", "hello to " + o.node + " failed: " + problem);
  if (server_version != o.protocol)
    return fail(o, exit_connect, "version",
                "protocol version mismatch: node " + o.node + " speaks control protocol " +
                    std::to_string(server_version) + ", this observerctl speaks " +
                    std::to_string(o.protocol) + "; use matching versions");
  std::string reply;
  self->request(*remote, timeout, fraiseql::control_atom::value, o.token, command,
                json::serialize(args))
      .receive([&](const std::string& r) { reply = r; },
               [&](caf::error& e) { problem = sys.render(e); });
  if (!problem.empty()) return fail(o, exit_connect, "connect", command + " failed: " + problem);
  json::value r;
  try {
    r = json::parse(reply);
  } catch (const std::exception& e) {
    return fail(o, exit_failed, "failed",
                std::string("unreadable reply from the node: ") + e.what());
  }
  const bool ok = at(r, "ok").is_bool() && at(r, "ok").get_bool();
  if (o.format == "json") {
    std::cout << json::serialize(r) << "\n";
  } else if (ok || (!at(r, "result").is_null() && command != "dlq.retry")) {
    const auto& res = at(r, "result");
    if (command == "status")
      print_status(res);
    else if (command == "metrics")
      std::cout << str(res);
    else if (command == "dlq.list")
      print_dlq_list(res);
    else if (command == "dlq.show")
      print_dlq_show(res);
    else if (command == "dlq.retry")
      print_redrive(res);
    else if (command == "dlq.retry-all")
      print_retry_all(res);
    else if (command == "dlq.remove")
      std::cout << "DLQ entry " << ref(at(res, "id")) << " removed\n";
    else if (command == "dlq.stats")
      print_dlq_stats(res);
    else if (command == "cache-stats")
      print_cache_stats(res);
    else if (command == "search")
      print_search(res);
    else if (command == "replay")
      print_replay(res);
    else if (command == "replay.status")
      print_replay_status(res);
    else if (command == "backfill")
      print_backfill(res);
    else if (command == "backfill.status")
      print_backfill_status(res);
    else if (command == "debug-event" && res.is_array())
      print_history(res);
    else if (command == "debug-event")
      print_debug_event(res);
  }
  if (ok) return exit_ok;
  const auto code = str(at(r, "code"));
  std::cerr << "error: " << str(at(r, "error")) << "\n";
  if (code == "auth" && !o.token_file.empty())
    std::cerr << "(the token came from " << o.token_file
              << ", written by the node that listened on this port: is that node still running?)\n";
  else if (code == "auth" && o.token.empty()) {
    std::cerr << "(no token given, and no token file found:";
    for (const auto& p : o.searched) std::cerr << " " << p;
    std::cerr << "; set FRAISEQL_CONTROL_TOKEN, or FRAISEQL_RUNTIME_DIR to the node's [control] "
                 "runtime_dir)\n";
  }
  if (code == "auth") return exit_auth;
  if (code == "usage") return exit_usage;
  return exit_failed;
}

int validate_config(const std::string& file, bool detailed) {
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
  for (const auto& w : res.warnings) std::cerr << "warning: " << w.to_string() << "\n";
  std::cout << file << ": configuration is valid\n";
  if (detailed) {
    std::cout << "  transport: " << cfg.transport.transport << "\n";
    if (cfg.transport.transport == "nats" && cfg.nats)
      std::cout << "  roles (--role all): " << fraiseql::roles_text(cfg.roles) << "\n"
                << "  nats: " << cfg.nats->url << " stream=" << cfg.nats->stream
                << " partitions=" << cfg.nats->partitions << "\n";
    std::cout << "  listener: id=" << cfg.listener.listener_id
              << " batch_size=" << cfg.listener.batch_size
              << " max_in_flight=" << cfg.listener.max_in_flight
              << " max_bytes_in_flight=" << cfg.listener.max_bytes_in_flight
              << " max_event_bytes=" << cfg.listener.max_event_bytes << "\n"
              << "  observers: " << cfg.observers.size() << "\n";
    for (const auto& o : cfg.observers) {
      std::cout << "    - " << o.name << ": " << o.event_type << " " << o.entity
                << (o.condition.empty() ? "" : " if " + o.condition) << "\n";
      for (size_t i = 0; i < o.actions.size(); ++i) {
        const auto& a = o.actions[i];
        std::cout << "        action " << i << ": " << a.type;
        if (a.webhook) std::cout << " " << a.webhook->method << " " << a.webhook->url;
        if (a.nats) {  // the first server without credentials, and the subject
          const auto urls = a.nats->urls();
          const auto first = urls.empty() ? std::nullopt : fraiseql::parse_nats_url(urls.front());
          std::cout << " " << (first ? first->endpoint() : "nats") << " " << a.nats->subject;
        }
        std::cout << "\n";
      }
      std::cout << "        retry: max_attempts=" << o.retry.max_attempts
                << " initial_delay_ms=" << o.retry.initial_delay_ms
                << " max_delay_ms=" << o.retry.max_delay_ms << "\n";
    }
  }
  return 0;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

/// The first word naming no subcommand of `app` (or of the subcommand it
/// names, and so on), skipping options and their values: what the user typed
/// as a command that does not exist. Returns (the command that has no such
/// subcommand, the word).
std::optional<std::pair<const CLI::App*, std::string>> unknown_command(const CLI::App& app,
                                                                       int argc, char** argv) {
  const CLI::App* at = &app;
  for (int i = 1; i < argc; ++i) {
    const std::string w = argv[i];
    if (w == "--") return std::nullopt;
    if (w.size() > 1 && w[0] == '-') {
      if (w.find('=') != std::string::npos) continue;
      // An option that takes a value consumes the next word.
      const CLI::Option* o = nullptr;
      for (const CLI::App* a = at; a != nullptr && o == nullptr; a = a->get_parent())
        o = const_cast<CLI::App*>(a)->get_option_no_throw(w);
      if (o != nullptr && o->get_expected_min() > 0) ++i;
      continue;
    }
    const auto subs = at->get_subcommands([](const CLI::App*) { return true; });
    if (subs.empty()) return std::nullopt;  // a leaf: positional arguments follow
    const CLI::App* next = nullptr;
    for (const CLI::App* s : subs)
      if (s->check_name(w)) next = s;
    if (next == nullptr) return std::make_pair(at, w);
    at = next;
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string program =
      argc > 0 ? std::filesystem::path(argv[0]).filename().string() : "observerctl";
  CLI::App app{program + ": operate FraiseQL observer nodes", program};
  app.set_version_flag("--version", program + " " FRAISEQL_VERSION " (control protocol " +
                                        std::to_string(fraiseql::control_protocol_version) + ")");
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand

  connection_options conn;
  conn.node = env_or("FRAISEQL_CONTROL_NODE", conn.node);
  conn.token = env_or("FRAISEQL_CONTROL_TOKEN", "");
  conn.runtime_dir = env_or("FRAISEQL_RUNTIME_DIR", "");
  conn.tls_cert = env_or("FRAISEQL_CONTROL_TLS_CERT", "");
  conn.tls_key = env_or("FRAISEQL_CONTROL_TLS_KEY", "");
  conn.tls_ca = env_or("FRAISEQL_CONTROL_TLS_CA", "");
  app.add_option("--node", conn.node, "Control plane address HOST:PORT (env FRAISEQL_CONTROL_NODE)")
      ->capture_default_str();
  app.add_option("--token", conn.token,
                 "Control token (env FRAISEQL_CONTROL_TOKEN, preferred: not visible in ps)");
  app.add_option("--runtime-dir", conn.runtime_dir,
                 "Where the node wrote its generated token, control-PORT.token (env "
                 "FRAISEQL_RUNTIME_DIR; default $XDG_RUNTIME_DIR/fraiseql, /run/fraiseql as root, "
                 "else /tmp/fraiseql-UID)");
  app.add_option("--tls-cert", conn.tls_cert,
                 "Client certificate PEM (env FRAISEQL_CONTROL_TLS_CERT)");
  app.add_option("--tls-key", conn.tls_key, "Client key PEM (env FRAISEQL_CONTROL_TLS_KEY)");
  app.add_option("--tls-ca", conn.tls_ca,
                 "CA PEM that signed the node (env FRAISEQL_CONTROL_TLS_CA)");
  app.add_option("--format", conn.format, "Output format (table is text)")
      ->check(CLI::IsMember({"text", "json", "table"}))
      ->capture_default_str();
  app.add_option("--timeout", conn.timeout_s, "Seconds to wait for the node")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  // Claims another protocol version in hello (compatibility tests only).
  app.add_option("--protocol-version", conn.protocol)->group("");

  auto* vc = app.add_subcommand("validate-config", "Validate a configuration file");
  std::string file;
  bool detailed = false;
  vc->add_option("file", file, "TOML configuration file");
  vc->add_flag("--detailed", detailed, "Print the observers and actions found");
  auto* ev = app.add_subcommand("eval", "Evaluate a condition or render a template offline");
  std::string event_file, condition, templ;
  ev->add_option("--event", event_file, "JSON file holding an event envelope")->required();
  auto* cond_opt = ev->add_option("--condition", condition, "JMESPath condition");
  auto* templ_opt = ev->add_option("--template", templ, "Template with {{ expr }} holes");
  cond_opt->excludes(templ_opt);

  json::object args;
  std::string command;
  auto* st = app.add_subcommand("status", "Role, leadership, listener, checkpoint, backlog, DLQ");
  bool st_detailed = false;
  st->add_flag("--detailed", st_detailed, "Add observers, journal and limits");
  auto* me = app.add_subcommand("metrics", "Prometheus text exposition of the node");
  std::string metric;
  me->add_option("--metric", metric, "Only this metric family");

  auto* dlq = app.add_subcommand("dlq", "Dead-letter queue");
  dlq->require_subcommand(1);
  auto* dl = dlq->add_subcommand("list", "List DLQ entries (oldest first)");
  int64_t limit = 50, offset = 0;
  std::string observer, after, status_filter = "pending";
  dl->add_option("--limit", limit, "At most this many")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  dl->add_option("--offset", offset, "Skip this many")->check(CLI::NonNegativeNumber);
  dl->add_option("--observer", observer, "Only this observer's entries");
  dl->add_option("--after", after,
                 "Only entries created after this time (e.g. 2026-11-23T01:00:00Z)");
  dl->add_option("--status", status_filter, "pending, retrying, resolved, removed or all")
      ->check(CLI::IsMember({"pending", "retrying", "resolved", "removed", "all"}))
      ->capture_default_str();
  std::string id_text;
  auto* ds = dlq->add_subcommand("show", "One DLQ entry with its event");
  ds->add_option("id", id_text, "DLQ entry id (dlq-001 or 1)")->required();
  auto* dr = dlq->add_subcommand("retry", "Redrive one entry through the action pool");
  dr->add_option("id", id_text, "DLQ entry id (dlq-001 or 1)")->required();
  auto* da = dlq->add_subcommand("retry-all", "Redrive every pending entry");
  bool dry_run = false;
  da->add_option("--observer", observer, "Only this observer's entries");
  da->add_flag("--dry-run", dry_run, "List what would be retried, retry nothing");
  auto* dm = dlq->add_subcommand("remove", "Mark an entry removed (kept for audit)");
  dm->add_option("id", id_text, "DLQ entry id (dlq-001 or 1)")->required();
  auto* dt = dlq->add_subcommand("stats", "Counts by status, observer, error");
  bool by_observer = false, by_error = false;
  dt->add_flag("--by-observer", by_observer, "Break down by observer");
  dt->add_flag("--by-error", by_error, "Break down by error");

  auto* cs = app.add_subcommand(
      "cache-stats", "Result cache: hit rate, size, evictions, Redis health, per observer");
  auto* de = app.add_subcommand("debug-event", "Why an event did (not) trigger what");
  std::string event_id;
  int64_t history = 0;
  auto* eid = de->add_option("--event-id", event_id, "Change-log event id (uuid)");
  auto* hist = de->add_option("--history", history, "The latest N events this node routed")
                   ->check(CLI::Range(1, 1000000));
  bool de_detailed = false;
  de->add_flag("--detailed", de_detailed, "Also observers whose filter does not match");
  eid->excludes(hist);

  auto* se = app.add_subcommand(
      "search",
      "Search the audit trail, e.g. 'entity_type:Order AND event_kind:created AND "
      "timestamp:[now-1d TO now]' (docs/history.md)");
  std::string query, search_format;
  int64_t search_limit = 50;
  se->add_option("query", query, "Query (quote it for the shell)")->required();
  se->add_option("--limit", search_limit, "At most this many hits (newest first)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  se->add_option("--format", search_format, "table or json")
      ->check(CLI::IsMember({"table", "text", "json"}));
  auto* rp = app.add_subcommand(
      "replay", "Re-deliver retained change-log events with their original idempotency keys");
  std::string rp_from, rp_to, rp_observer;
  bool rp_dry = false, rp_again = false, rp_status = false;
  auto* rp_from_opt = rp->add_option("--from", rp_from,
                                     "First event: a time (2026-12-03T18:00:00Z) or an event id");
  rp->add_option("--to", rp_to, "Last event (inclusive): a time or an event id; default: now");
  rp->add_option("--observer", rp_observer, "Only this observer runs");
  rp->add_flag("--dry-run", rp_dry,
               "Count what would be re-delivered, per observer; deliver nothing");
  rp->add_flag("--again", rp_again, "Replay even if the same request was made before");
  auto* rp_status_opt = rp->add_flag("--status", rp_status, "List this listener's replays");
  rp_status_opt->excludes(rp_from_opt);
  auto* bf = app.add_subcommand("backfill",
                                "Emit a captured table's existing rows as READ events, in chunks");
  std::string bf_table, bf_where;
  int64_t bf_batch = 1000;
  bool bf_status = false;
  auto* bf_table_opt = bf->add_option("table", bf_table, "The table (schema.table), captured");
  bf->add_option("--where", bf_where, "Only rows matching this SQL condition");
  bf->add_option("--batch", bf_batch, "Rows per chunk")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  bf->add_flag("--status", bf_status, "List backfills and their progress")->excludes(bf_table_opt);

  // The spec's `fraiseql-observers start --config FILE`: nodes are started by
  // observer-node; answered with one sentence saying so.
  if (auto u = unknown_command(app, argc, argv); u && u->first == &app && u->second == "start") {
    std::cerr << "error: " << program
              << " does not start nodes: run `fraiseql-observer --config FILE.toml` "
                 "(observer-node; example configurations in config/examples/)\n";
    return exit_usage;
  }
  try {
    app.parse(argc, argv);
    if (*ev && condition.empty() && templ.empty())
      throw CLI::RequiredError("--condition or --template");
    if (*de && event_id.empty() && history == 0)
      throw CLI::RequiredError("--event-id or --history");
  } catch (const CLI::ParseError& e) {
    if (auto u = unknown_command(app, argc, argv)) {
      const auto& [parent, word] = *u;
      std::string known;
      for (const CLI::App* s : parent->get_subcommands([](const CLI::App*) { return true; }))
        known += (known.empty() ? "" : ", ") + s->get_name();
      std::cerr << "error: unknown command '" << word << "'"
                << (parent == &app ? "" : " for '" + parent->get_name() + "'")
                << "; the commands are: " << known << "\n";
      return exit_usage;
    }
    int rc = app.exit(e);
    return rc == 0 ? exit_ok : exit_usage;
  }
  if (*ev) return run_eval(event_file, condition, templ);
  if (*vc && file.empty()) {
    std::cerr << "error: validate-config needs the configuration file to check: " << program
              << " validate-config FILE.toml [--detailed]\n";
    return exit_usage;
  }
  if (*vc) return validate_config(file, detailed);
  if (*st) {
    command = "status";
    args["detailed"] = st_detailed;
  } else if (*me) {
    command = "metrics";
    if (!metric.empty()) args["metric"] = metric;
  } else if (*dl) {
    command = "dlq.list";
    args["limit"] = limit;
    args["offset"] = offset;
    args["status"] = status_filter;
    if (!observer.empty()) args["observer"] = observer;
    if (!after.empty()) args["after"] = after;
  } else if (*ds || *dr || *dm) {
    command = *ds ? "dlq.show" : *dr ? "dlq.retry" : "dlq.remove";
    auto id = fraiseql::parse_dlq_ref(id_text);
    if (!id)
      return fail(conn, exit_usage, "usage",
                  "'" + id_text + "' is not a DLQ id (dlq-001 or 1, as `dlq list` shows them)");
    args["id"] = *id;
  } else if (*da) {
    command = "dlq.retry-all";
    if (!observer.empty()) args["observer"] = observer;
    args["dry_run"] = dry_run;
  } else if (*dt) {
    command = "dlq.stats";
    args["by_observer"] = by_observer;
    args["by_error"] = by_error;
  } else if (*se) {
    command = "search";
    args["query"] = query;
    args["limit"] = search_limit;
    if (!search_format.empty()) conn.format = search_format;
  } else if (*rp) {
    if (rp_status) {
      command = "replay.status";
    } else {
      if (rp_from.empty())
        return fail(conn, exit_usage, "usage",
                    "replay needs --from (a time or an event id), or --status");
      command = "replay";
      args["from"] = rp_from;
      if (!rp_to.empty()) args["to"] = rp_to;
      if (!rp_observer.empty()) args["observer"] = rp_observer;
      args["dry_run"] = rp_dry;
      args["again"] = rp_again;
    }
  } else if (*bf) {
    if (bf_status) {
      command = "backfill.status";
    } else {
      if (bf_table.empty())
        return fail(conn, exit_usage, "usage",
                    "backfill needs a TABLE (schema.table), or --status");
      command = "backfill";
      args["table"] = bf_table;
      if (!bf_where.empty()) args["where"] = bf_where;
      args["batch"] = bf_batch;
    }
  } else if (*cs) {
    command = "cache-stats";
  } else if (*de) {
    command = "debug-event";
    if (history > 0)
      args["history"] = history;
    else
      args["event_id"] = event_id;
    args["detailed"] = de_detailed;
  }
  return run_remote(conn, command, args);
}
