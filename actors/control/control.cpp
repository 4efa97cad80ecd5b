#include "actors/control/control.hpp"

#include "actors/control/commands.hpp"
#include "messages/control.hpp"
#include "node/identity.hpp"
#include "node/node.hpp"
#include "node/system_shutdown.hpp"
#include "runtime/config/control_token.hpp"
#include "runtime/core/audit_query.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/core/journal.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/core/replay.hpp"
#include "runtime/io/pg/audit_store.hpp"
#include "runtime/io/pg/control_store.hpp"
#include "runtime/io/pg/history_store.hpp"
#include "runtime/io/pg/session.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace fraiseql {

namespace json = boost::json;

namespace {

struct control_system_config : caf::actor_system_config {
  explicit control_system_config(const control_config& c) {
    load<caf::io::middleman>();
    if (c.tls()) {
      // Mutual TLS: with a certificate and a CA configured, CAF's OpenSSL
      // session requires and verifies the peer's certificate.
      load<caf::openssl::manager>();
      openssl_certificate = c.tls_certificate;
      openssl_key = c.tls_key;
      openssl_cafile = c.tls_ca;
    }
    set("scheduler.max-threads", static_cast<size_t>(1));
    set("logger.verbosity", caf::atom("quiet"));
  }
};

}  // namespace

struct control_state {
  static inline const char* name = "control";
  node* n = nullptr;
  std::unique_ptr<control_store> store;
  std::unique_ptr<audit_store> audit;     // `search`; opened on first use
  std::unique_ptr<history_store> hstore;  // opened at the first replay or backfill request
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::string node_name;
  control_server::view_fn cluster_view;
  /// The token requests must carry: configured, or generated at start.
  std::string token;

  const config& cfg() const { return n->cfg(); }

  std::optional<uint32_t> observer_index(const std::string& name) const {
    auto reg = n->registry();
    for (uint32_t i = 0; i < reg->size(); ++i)
      if (reg->config(i).name == name) return i;
    return std::nullopt;
  }

  /// `observerctl search QUERY`: the audit trail in PostgreSQL (docs/history.md).
  std::string search(const args_view& args) {
    const auto q = args.str("query");
    if (!q) throw usage_error("search needs a query");
    int64_t limit = 50;
    if (auto v = args.num("limit")) limit = *v;
    if (limit < 1 || limit > 10000) throw usage_error("limit must be in [1, 10000]");
    const auto& a = cfg().audit;
    if (!a.enabled)
      return error_reply("failed",
                         "the audit trail is off on this node ([audit] enabled = false): nothing "
                         "to search");
    if (a.backend != "postgres")
      return error_reply("failed",
                         "the audit trail goes to Elasticsearch ([audit] backend = \"" + a.backend +
                             "\"): search it there (the same query works as a query_string "
                             "query, e.g. in Kibana or OpenSearch Dashboards)");
    audit_search_sql sql;
    std::string normalized;
    try {
      sql = compile_audit_query(*q, static_cast<uint32_t>(limit));
      normalized = to_string(*parse_audit_query(*q));
    } catch (const audit_query_error& e) {
      throw usage_error("malformed query, " + describe_query_error(*q, e));
    }
    if (!audit)
      audit = std::make_unique<audit_store>(normalize_dsn(cfg().database.url),
                                            cfg().listener.listener_id);
    const auto started = std::chrono::steady_clock::now();
    auto hits = audit->search(sql);
    const std::chrono::duration<double, std::milli> took =
        std::chrono::steady_clock::now() - started;
    const auto n = hits.as_array().size();
    return ok_reply(json::object{{"query", normalized},
                                 {"mode", sql.attempts ? "attempts" : "events"},
                                 {"count", n},
                                 {"took_ms", took.count()},
                                 {"hits", std::move(hits)}});
  }

  std::string handle(const std::string& command, const json::object& a) {
    args_view args{a};
    if (command == "status") return ok_reply(status(args.flag("detailed")));
    if (command == "metrics") return metrics(args.str("metric"));
    if (command == "dlq.list") {
      dlq_filter f;
      if (auto v = args.num("limit")) {
        if (*v < 1 || *v > 10000) throw usage_error("limit must be in [1, 10000]");
        f.limit = static_cast<uint32_t>(*v);
      }
      if (auto v = args.num("offset")) {
        if (*v < 0) throw usage_error("offset must be >= 0");
        f.offset = static_cast<uint32_t>(*v);
      }
      f.observer = args.str("observer");
      f.after = args.str("after");
      if (auto v = args.str("status")) f.status = *v;
      if (f.status != "pending" && f.status != "retrying" && f.status != "resolved" &&
          f.status != "removed" && f.status != "all")
        throw usage_error("status must be one of pending, retrying, resolved, removed, all");
      return ok_reply(store->dlq_list(f));
    }
    if (command == "dlq.show") {
      auto id = args.required_num("id");
      auto row = store->dlq_show(id);
      if (!row) return error_reply("failed", "no DLQ entry " + dlq_ref(id));
      return ok_reply(std::move(*row));
    }
    if (command == "dlq.stats")
      return ok_reply(store->dlq_stats(args.flag("by_observer"), args.flag("by_error")));
    if (command == "dlq.remove") {
      auto id = args.required_num("id");
      if (!store->dlq_remove(id)) return error_reply("failed", "no DLQ entry " + dlq_ref(id));
      spdlog::info("control: DLQ entry {} removed", dlq_ref(id));
      return ok_reply(json::object{{"id", id}, {"status", "removed"}});
    }
    if (command == "dlq.retry") {
      auto r = redrive(args.required_num("id"));
      if (r.at("outcome") != "resolved") {
        auto msg = "redrive of DLQ entry " + dlq_ref(r.at("id").as_int64()) + " failed after " +
                   std::to_string(r.at("attempts").to_number<int64_t>()) +
                   " attempt(s): " + std::string(r.at("error").as_string());
        return error_reply("failed", msg, std::move(r));
      }
      return ok_reply(std::move(r));
    }
    if (command == "dlq.retry-all") return retry_all(args.str("observer"), args.flag("dry_run"));
    if (command == "cache-stats") return cache_stats();
    if (command == "search") return search(args);
    if (command == "replay" || command == "replay.status" || command == "backfill" ||
        command == "backfill.status")
      return history_command(command, args);
    if (command == "debug-event") {
      if (auto h = args.num("history")) {
        if (*h < 1) throw usage_error("history must be >= 1");
        return ok_reply(history(static_cast<size_t>(*h)));
      }
      auto id = args.str("event_id");
      if (!id) throw usage_error("debug-event needs event_id or history");
      return debug_event(*id, args.flag("detailed"));
    }
    throw usage_error("unknown command '" + command + "'");
  }

  // --- replay and backfill (docs/history.md) ---

  history_store& history() {
    if (!hstore) hstore = std::make_unique<history_store>(normalize_dsn(cfg().database.url));
    return *hstore;
  }

  std::string history_command(const std::string& command, const args_view& args) {
    try {
      if (command == "replay.status")
        return ok_reply(history().replays(cfg().listener.listener_id, 20));
      if (command == "backfill.status") return ok_reply(history().backfills(20));
      if (command == "replay") return replay(args);
      return backfill(args);
    } catch (const history_error& e) {
      if (e.usage) throw usage_error(e.what());
      return error_reply("failed", e.what());
    }
  }

  std::string replay(const args_view& args) {
    replay_request r;
    r.listener_id = cfg().listener.listener_id;
    if (auto f = args.str("from")) r.from = parse_replay_bound(*f);
    if (!r.from) throw usage_error("replay needs --from: a time or an event id");
    if (auto t = args.str("to")) {
      r.to = parse_replay_bound(*t);
      if (!r.to) throw usage_error("--to is empty: give a time or an event id, or leave it out");
    }
    if (auto o = args.str("observer")) {
      if (!observer_index(*o)) {
        std::string names;
        auto reg = n->registry();
        for (uint32_t i = 0; i < reg->size(); ++i)
          names += (names.empty() ? "" : ", ") + reg->config(i).name;
        throw usage_error("unknown observer '" + *o + "' (this node's observers: " +
                          (names.empty() ? std::string("none") : names) + ")");
      }
      r.observer = *o;
    }
    r.again = args.flag("again");
    auto plan = history().plan_replay(r);
    json::object out{
        {"events", plan.events},
        {"first", plan.first},
        {"last", plan.last},
        {"listener_id", r.listener_id},
        {"observer", r.observer.empty() ? json::value(nullptr) : json::value(r.observer)}};
    if (args.flag("dry_run")) {
      // What each observer would run: conditions evaluated now, a chunk at a
      // time (memory stays bounded whatever the range).
      auto reg = n->registry();
      std::vector<int64_t> per(reg->size(), 0);
      int64_t unmatched = 0, deliveries = 0;
      history().scan_replay(plan, 1000, [&](const std::vector<event_ptr>& batch) {
        for (const auto& ev : batch) {
          auto m = reg->match(*ev);
          if (!r.observer.empty())
            m.observers.erase(
                std::remove_if(m.observers.begin(), m.observers.end(),
                               [&](uint32_t o) { return reg->config(o).name != r.observer; }),
                m.observers.end());
          if (m.observers.empty()) ++unmatched;
          for (auto o : m.observers) {
            ++per[o];
            deliveries += static_cast<int64_t>(reg->config(o).actions.size());
          }
        }
      });
      json::array observers;
      for (uint32_t i = 0; i < reg->size(); ++i)
        if (r.observer.empty() || reg->config(i).name == r.observer)
          observers.push_back(json::object{{"observer", reg->config(i).name}, {"events", per[i]}});
      out["dry_run"] = true;
      out["observers"] = std::move(observers);
      out["unmatched"] = unmatched;
      out["actions"] = deliveries;
      return ok_reply(std::move(out));
    }
    bool created = false;
    out["replay"] = history().create_replay(plan, created);
    out["created"] = created;
    out["role"] = n->role();
    if (created)
      spdlog::info("control: replay {} requested: {} events from {} to {}{}",
                   json::serialize(out["replay"].as_object().at("id")), plan.events,
                   json::serialize(plan.first), json::serialize(plan.last),
                   r.observer.empty() ? std::string() : " for observer " + r.observer);
    return ok_reply(std::move(out));
  }

  std::string backfill(const args_view& args) {
    auto table = args.str("table");
    if (!table || table->empty()) throw usage_error("backfill needs a TABLE (schema.table)");
    int64_t batch = 1000;
    if (auto b = args.num("batch")) batch = *b;
    if (batch < 1 || batch > 100000) throw usage_error("--batch must be in [1, 100000]");
    auto where = args.str("where");
    auto row = history().create_backfill(*table, where, static_cast<uint32_t>(batch));
    spdlog::info("control: backfill {} of {} requested{}",
                 json::serialize(row.as_object().at("id")), *table,
                 where ? " where " + *where : std::string());
    json::object out{{"backfill", std::move(row)}, {"role", n->role()}};
    return ok_reply(std::move(out));
  }

  json::value status(bool detailed) {
    json::object s;
    s["node"] = node_name;
    s["listener_id"] = cfg().listener.listener_id;
    const auto role = n->role();
    s["role"] = role;
    s["protocol"] = control_protocol_version;
    s["uptime_seconds"] =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started)
            .count();
    s["name"] = cfg().cluster.node_name.empty() ? host_name() : cfg().cluster.node_name;
    s["lease"] = store->lease(cfg().listener.listener_id);
    s["checkpoint"] = store->checkpoint(cfg().listener.listener_id);
    s["dlq"] = json::object{{"pending", store->dlq_pending_count()}};
    if (auto ns = n->nats_state()) {
      json::array members, owned;
      for (const auto& m : ns->members) members.emplace_back(m);
      for (auto p : ns->owned) owned.emplace_back(p);
      s["nats"] =
          json::object{{"connected", ns->connected},     {"url", ns->url},
                       {"stream", ns->stream},           {"partitions", ns->partitions},
                       {"bridge", ns->bridge},           {"workers", ns->workers},
                       {"worker_name", ns->worker_name}, {"members", std::move(members)},
                       {"owned", std::move(owned)},      {"ownership_ok", ns->ownership_ok}};
    }
    auto scrape = n->scrape_metrics();
    if (scrape) {
      auto st = n->status();
      auto health = sample_value(*scrape, "observer_listener_health");
      s["listener"] =
          json::object{{"healthy", health ? json::value(*health >= 1) : json::value(nullptr)}};
      auto backlog = sample_value(*scrape, "observer_backlog_size");
      s["backlog"] = backlog ? json::value(static_cast<int64_t>(*backlog)) : json::value(nullptr);
      auto bytes = sample_value(*scrape, "observer_bytes_in_flight");
      s["in_flight"] = json::object{
          {"events", st.in_flight},
          {"bytes", bytes ? json::value(static_cast<int64_t>(*bytes)) : json::value(nullptr)},
          {"attempts", st.attempts_in_flight}};
      s["events"] = json::object{{"read", st.read}, {"finished", st.finished}};
      json::array breakers;
      for (const auto& b : st.breakers)
        breakers.push_back(json::object{{"endpoint", b.endpoint},
                                        {"state", to_string(b.state)},
                                        {"failures", b.failures},
                                        {"calls", b.calls},
                                        {"trips", b.trips},
                                        {"rejected", b.rejected},
                                        {"retry_in_ms", b.retry_in_ms}});
      s["breakers"] = std::move(breakers);
    } else {
      // Standby or starting: no pipeline runs here, so there is nothing to report.
      s["listener"] = nullptr;
      s["backlog"] = nullptr;
      s["in_flight"] = nullptr;
      s["events"] = nullptr;
      s["breakers"] = nullptr;
    }
    s["cluster"] = cluster_view ? cluster_view() : json::value(nullptr);
    s["leadership"] = leadership(s);
    if (detailed) {
      auto reg = n->registry();
      auto stats = store->dlq_stats(true, false);
      json::array observers;
      for (uint32_t i = 0; i < reg->size(); ++i) {
        const auto& oc = reg->config(i);
        json::array actions;
        for (const auto& ac : oc.actions) actions.push_back(json::string(ac.type));
        int64_t pending = 0;
        for (const auto& row : stats.at("by_observer").as_array())
          if (row.at("observer").as_string() == oc.name)
            pending = row.at("pending").to_number<int64_t>();
        observers.push_back(json::object{{"name", oc.name},
                                         {"event_type", oc.event_type},
                                         {"entity", oc.entity},
                                         {"condition", oc.condition},
                                         {"actions", std::move(actions)},
                                         {"max_attempts", oc.retry.max_attempts},
                                         {"dlq_pending", pending}});
      }
      s["observers"] = std::move(observers);
      auto tr = n->trace();
      s["journal"] = json::object{{"entries", tr->size()}, {"capacity", tr->capacity()}};
      s["limits"] =
          json::object{{"max_in_flight", cfg().listener.max_in_flight},
                       {"max_bytes_in_flight", cfg().listener.max_bytes_in_flight},
                       {"max_event_bytes", cfg().listener.max_event_bytes},
                       {"max_concurrent_actions", cfg().performance.max_concurrent_actions},
                       {"batch_size", cfg().listener.batch_size}};
    }
    return s;
  }

  /// Per listener id: who leads and how many of its nodes are healthy, from
  /// the cluster's view, or from this node and the lease row without one.
  json::array leadership(const json::object& s) const {
    json::array rows;
    const auto& cluster = s.at("cluster");
    if (cluster.is_object()) {
      for (const auto& l : cluster.at("listeners").as_array()) {
        auto row = l.as_object();
        row["source"] = "cluster";
        rows.push_back(std::move(row));
      }
      return rows;
    }
    const auto role = n->role();
    if (role == "worker") return rows;  // a NATS worker leads no listener
    const auto sum = n->summary();
    const bool healthy =
        role == "leader" || role == "dry-run" ? sum.listener_healthy : role == "standby";
    json::value leader = nullptr;
    json::value epoch = 0;
    if (role == "leader" || role == "dry-run") {
      leader = s.at("name");
      epoch = sum.epoch;
    } else if (const auto& lease = s.at("lease"); lease.is_object()) {
      leader = lease.at("holder");  // host:pid: without [cluster], names are not exchanged
      epoch = lease.at("epoch");
    }
    rows.push_back(json::object{{"listener_id", cfg().listener.listener_id},
                                {"leader", leader},
                                {"epoch", epoch},
                                {"leader_healthy", role == "leader" && sum.listener_healthy},
                                {"healthy", healthy ? 1 : 0},
                                {"members", 1},
                                {"source", "node"}});
    return rows;
  }

  std::string metrics(const std::optional<std::string>& metric) {
    auto text = n->scrape_metrics();
    if (!text)
      return error_reply(
          "failed", "this node is " + n->role() + ": pipeline metrics exist only while it leads");
    if (!metric) return ok_reply(json::string(*text));
    auto f = filter_metric(*text, *metric);
    if (f.empty()) return error_reply("failed", "no metric named '" + *metric + "'");
    return ok_reply(json::string(f));
  }

  json::object redrive(int64_t id) {
    auto role = n->role();
    // A NATS worker runs actions too (role "worker"): it redrives as well.
    if (role != "leader" && role != "dry-run" && role != "worker")
      throw std::runtime_error("this node is " + role +
                               ": redrive runs on the node leading listener '" +
                               cfg().listener.listener_id + "'");
    bool claimed = false;
    auto row = store->dlq_claim(id, claimed);
    if (!row) throw std::runtime_error("no DLQ entry " + dlq_ref(id));
    if (!claimed)
      throw std::runtime_error("DLQ entry " + dlq_ref(id) + " is " + row->status +
                               "; only pending entries can be retried");
    json::object out{{"id", id}, {"observer", row->observer_name}, {"action", row->action_index}};
    auto fail = [&](const std::string& why) {
      store->dlq_failed_again(id, 0, why);
      out["outcome"] = "failed";
      out["attempts"] = 0;
      out["error"] = why;
      return out;
    };
    if (row->observer_name == "(listener)") {
      // An oversize event (written by the router): its body was never read,
      // so nothing can be redriven. The entry keeps its reason, sizes included.
      std::string why = "an oversize event";
      try {
        const auto ev = boost::json::parse(row->event_json);
        const auto& o = ev.at("oversize");
        why = oversize_reason(o.at("bytes").to_number<uint64_t>(),
                              o.at("limit").to_number<uint64_t>());
      } catch (const std::exception&) {
      }
      return fail(why + "; a redrive cannot deliver it (its body was never read)");
    }
    auto obs = observer_index(row->observer_name);
    if (!obs) return fail("observer '" + row->observer_name + "' is not configured on this node");
    if (row->action_index >= n->registry()->config(*obs).actions.size())
      return fail("observer '" + row->observer_name + "' has no action " +
                  std::to_string(row->action_index));
    event_ptr ev;
    try {
      ev = event_from_envelope(row->event_json, 0);
    } catch (const std::exception& e) {
      return fail(std::string("stored event cannot be read: ") + e.what());
    }
    node::redrive_result r;
    try {
      r = n->redrive(ev, *obs, row->action_index, std::chrono::minutes(10));
    } catch (const std::exception& e) {
      return fail(e.what());
    }
    out["attempts"] = r.attempts;
    if (r.ok) {
      store->dlq_resolved(id, r.attempts);
      out["outcome"] = "resolved";
      spdlog::info("control: DLQ entry {} redriven: delivered after {} attempt(s)", dlq_ref(id),
                   r.attempts);
    } else {
      std::string why = "redrive of DLQ entry " + dlq_ref(id) + " failed after " +
                        std::to_string(r.attempts) + " attempt(s): " + r.error;
      store->dlq_failed_again(id, r.attempts, r.error);
      out["outcome"] = "failed";
      out["error"] = r.error;
      spdlog::warn("control: {}", why);
    }
    return out;
  }

  std::string cache_stats() {
    auto cs = n->cache_stats();
    if (!cs)
      return error_reply(
          "failed", "this node is " + n->role() + ": the result cache exists only while it leads");
    auto opt = [](const std::optional<uint64_t>& v) {
      return v ? json::value(*v) : json::value(nullptr);
    };
    auto rate = [](uint64_t hits, uint64_t misses) {
      return hits + misses > 0
                 ? json::value(static_cast<double>(hits) / static_cast<double>(hits + misses))
                 : json::value(nullptr);
    };
    json::array observers;
    for (const auto& o : cs->observers)
      observers.push_back(json::object{{"observer", o.name},
                                       {"cached_actions", o.cached_actions},
                                       {"hits", o.hits},
                                       {"misses", o.misses},
                                       {"hit_rate", rate(o.hits, o.misses)}});
    json::object out{{"backend", cs->backend},
                     {"ttl_ms", cs->ttl_ms},
                     {"hits", cs->hits},
                     {"misses", cs->misses},
                     {"hit_rate", rate(cs->hits, cs->misses)},
                     {"entries", opt(cs->entries)},
                     {"capacity", opt(cs->capacity)},
                     {"evictions", opt(cs->evictions)},
                     {"expired", opt(cs->expired)},
                     {"observers", std::move(observers)}};
    if (!cs->usage_error.empty()) out["usage_error"] = cs->usage_error;
    if (cs->redis_ok)
      out["redis"] = json::object{
          {"url", cs->redis_url},
          {"healthy", *cs->redis_ok},
          {"error", cs->redis_error.empty() ? json::value(nullptr) : json::value(cs->redis_error)}};
    else
      out["redis"] = nullptr;
    return ok_reply(std::move(out));
  }

  std::string retry_all(const std::optional<std::string>& observer, bool dry_run) {
    auto ids = store->dlq_pending_ids(observer);
    json::array list;
    for (auto id : ids) list.push_back(id);
    if (dry_run) return ok_reply(json::object{{"dry_run", true}, {"would_retry", std::move(list)}});
    json::array results;
    int64_t resolved = 0, failed = 0;
    for (auto id : ids) {
      json::object r;
      try {
        r = redrive(id);
      } catch (const std::exception& e) {
        r = json::object{{"id", id}, {"outcome", "failed"}, {"error", e.what()}};
      }
      (r.at("outcome") == "resolved" ? resolved : failed)++;
      results.push_back(std::move(r));
    }
    json::object out{{"retried", static_cast<int64_t>(ids.size())},
                     {"resolved", resolved},
                     {"failed", failed},
                     {"results", std::move(results)}};
    if (failed > 0)
      return error_reply(
          "failed",
          std::to_string(failed) + " of " + std::to_string(ids.size()) + " redrives failed",
          std::move(out));
    return ok_reply(std::move(out));
  }

  json::value history(size_t count) {
    auto reg = n->registry();
    json::array out;
    for (const auto& e : n->trace()->latest(count)) {
      json::array matched;
      for (auto o : e.matched) matched.push_back(json::string(reg->config(o).name));
      json::object states;
      for (const auto& a : e.actions) {
        auto& v = states[a.state];
        v = (v.is_int64() ? v.get_int64() : 0) + 1;
      }
      out.push_back(json::object{{"event_id", e.ev->id},
                                 {"event_type", e.ev->event_type},
                                 {"entity_type", e.ev->entity_type},
                                 {"entity_id", e.ev->entity_id},
                                 {"routed_at", iso_time(e.routed_ms)},
                                 {"matched", std::move(matched)},
                                 {"condition_errors", e.condition_errors.size()},
                                 {"actions", std::move(states)}});
    }
    return out;
  }

  std::string debug_event(const std::string& id, bool detailed) {
    auto reg = n->registry();
    auto entry = n->trace()->find(id);
    event_ptr ev = entry ? entry->ev : store->change_log_event(id);
    if (!ev)
      return error_reply(
          "failed",
          "event " + id + " is neither in this node's journal nor in core.tb_entity_change_log");
    json::object out;
    out["event_id"] = ev->id;
    out["source"] = entry ? "journal" : "change_log";
    if (entry) out["routed_at"] = iso_time(entry->routed_ms);
    out["envelope"] = ev->envelope;
    json::array observers;
    for (const auto& m : reg->explain(*ev)) {
      if (!detailed && !m.filter_matches) continue;
      const auto& oc = reg->config(m.observer);
      json::object o{{"observer", oc.name}, {"verdict", m.verdict}};
      if (!oc.condition.empty()) {
        o["condition"] = oc.condition;
        o["condition_result"] = m.condition_detail;
      }
      if (entry) {
        json::array actions;
        for (const auto& a : entry->actions) {
          if (a.observer != m.observer) continue;
          json::object ao{{"action", a.action},
                          {"type", oc.actions.at(a.action).type},
                          {"attempts", a.attempts},
                          {"state", a.state},
                          {"updated_at", iso_time(a.updated_ms)}};
          if (!a.last_error.empty()) ao["last_error"] = a.last_error;
          actions.push_back(std::move(ao));
        }
        o["actions"] = std::move(actions);
      }
      observers.push_back(std::move(o));
    }
    out["observers"] = std::move(observers);
    out["dlq"] = store->dlq_for_event(ev->id);
    return ok_reply(std::move(out));
  }
};

using control_pointer = control_actor::stateful_pointer<control_state>;

control_actor::behavior_type control_behavior(control_pointer self, node* n, std::string token,
                                              control_server::view_fn cluster_view) {
  auto& st = self->state;
  st.n = n;
  st.token = std::move(token);
  st.cluster_view = std::move(cluster_view);
  st.store = std::make_unique<control_store>(normalize_dsn(n->cfg().database.url));
  st.node_name = node_identity();
  return {
      [self](hello_atom, uint32_t client_version) {
        if (client_version != control_protocol_version)
          spdlog::warn("control: client speaks protocol {}, this node {}: it will disconnect",
                       client_version, control_protocol_version);
        json::object info{{"node", self->state.node_name},
                          {"listener_id", self->state.cfg().listener.listener_id},
                          {"protocol", control_protocol_version}};
        return std::make_tuple(control_protocol_version, json::serialize(info));
      },
      [self](control_atom, const std::string& token, const std::string& command,
             const std::string& args) -> std::string {
        auto& st = self->state;
        if (!same_token(token, st.token)) {
          auto sender = self->current_sender();
          spdlog::warn("control: rejected '{}' request from {}: {} token", command,
                       sender ? caf::to_string(sender->node()) : std::string("unknown peer"),
                       token.empty() ? "missing" : "wrong");
          return error_reply("auth", "authentication failed: missing or wrong control token");
        }
        try {
          json::value parsed = args.empty() ? json::value(json::object{}) : json::parse(args);
          if (!parsed.is_object()) throw usage_error("arguments must be a JSON object");
          spdlog::debug("control: {} {}", command, args);
          return st.handle(command, parsed.as_object());
        } catch (const usage_error& e) {
          return error_reply("usage", e.what());
        } catch (const pg_unavailable& e) {
          return error_reply("failed", std::string("database unavailable: ") + e.what());
        } catch (const std::exception& e) {
          return error_reply("failed", e.what());
        }
      },
  };
}

struct control_server::impl {
  control_system_config acfg;
  std::unique_ptr<caf::actor_system> sys;
  control_actor actor;
  uint16_t port = 0;
  /// The token file this node wrote (removed at stop), if any.
  std::string token_file;
  explicit impl(const control_config& c) : acfg(c) {}
};

control_server::control_server(node& n, view_fn cluster_view)
    : impl_(std::make_unique<impl>(n.cfg().control)) {
  const auto& c = n.cfg().control;
  auto& d = *impl_;
  // Without a configured token the node makes one and publishes it to the
  // runtime directory, owner-only, for observerctl on this host.
  const bool generated = c.token.empty();
  const std::string token = generated ? random_token() : c.token;
  d.sys = std::make_unique<caf::actor_system>(d.acfg);
  d.actor = d.sys->spawn<caf::detached>(control_behavior, &n, token, std::move(cluster_view));
  auto publish = [&](uint16_t p) {
    return c.tls() ? caf::openssl::publish(d.actor, p, c.bind.c_str(), true)
                   : d.sys->middleman().publish(d.actor, p, c.bind.c_str(), true);
  };
  auto port = publish(static_cast<uint16_t>(c.port));
  if (!port && !c.port_configured && c.port != 0) {
    // The default port is taken (another node on this host): any free one.
    auto why = d.sys->render(port.error());
    port = publish(0);
    if (port)
      spdlog::warn(
          "control: {}:{} is in use ({}); listening on {}:{} instead (observerctl --node "
          "{}:{}; set [control] port to choose)",
          c.bind, c.port, why, c.bind, *port, c.bind, *port);
  }
  if (!port) {
    auto why = d.sys->render(port.error());
    caf::anon_send_exit(d.actor, caf::exit_reason::user_shutdown);
    d.actor = nullptr;
    d.sys.reset();
    throw std::runtime_error("control plane cannot listen on " + c.bind + ":" +
                             std::to_string(c.port) + ": " + why);
  }
  d.port = *port;
  std::string auth = "token required";
  if (generated) {
    const auto dir = control_runtime_dir(c.runtime_dir);
    const auto path = control_token_path(dir, d.port);
    auto problem = prepare_runtime_dir(dir);
    if (!problem) problem = write_token_file(path, token);
    if (problem) {
      spdlog::warn(
          "control: {}; observerctl cannot authenticate to this node (set [control] runtime_dir, "
          "or token_file / token_env)",
          *problem);
      auth = "token required, not published";
    } else {
      d.token_file = path;
      auth = "token in " + path;
    }
  }
  spdlog::info("control: listening on {}:{} ({}, {}, protocol {})", c.bind, d.port,
               c.tls() ? "TLS, peers verified" : "plain, loopback", auth, control_protocol_version);
}

control_server::~control_server() {
  auto& d = *impl_;
  if (!d.token_file.empty()) ::unlink(d.token_file.c_str());
  if (d.actor) caf::anon_send_exit(d.actor, caf::exit_reason::user_shutdown);
  d.actor = nullptr;
  // The process is exiting when this runs: do not let a peer connection that
  // CAF is still tearing down hold the exit up. Wait a bounded time, then go.
  destroy_bounded(std::move(d.sys), "control: the control plane");
}

uint16_t control_server::port() const {
  return impl_->port;
}

}  // namespace fraiseql
