#include "actors/cluster/cluster.hpp"

#include "messages/cluster.hpp"
#include "node/identity.hpp"
#include "node/node.hpp"
#include "node/system_shutdown.hpp"
#include "runtime/config/loopback.hpp"
#include "runtime/core/membership.hpp"
#include "runtime/core/token.hpp"
#include "runtime/ops/metrics.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace fraiseql {

namespace json = boost::json;
using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

namespace {

/// An unreachable member stays in the view (unhealthy) this long, then goes.
constexpr milliseconds forget_after{std::chrono::minutes(5)};
/// Retrying a seed that does not answer: from the heartbeat up to this.
constexpr milliseconds max_dial_backoff{std::chrono::seconds(30)};
/// A refusal or failure is logged at warning level again after this long.
constexpr auto relog_after = std::chrono::minutes(1);

milliseconds connection_timeout(const config& c) {
  return milliseconds(c.cluster.connection_timeout_ms != 0 ? c.cluster.connection_timeout_ms
                                                           : c.failover.failover_threshold_ms);
}

struct cluster_system_config : caf::actor_system_config {
  explicit cluster_system_config(const config& cfg) {
    const auto& c = cfg.cluster;
    load<caf::io::middleman>();
    if (c.tls()) {
      load<caf::openssl::manager>();
      openssl_certificate = c.tls_certificate;
      openssl_key = c.tls_key;
      openssl_cafile = c.tls_ca;
    }
    // Off by default in 0.17.6: without them a frozen peer is only noticed
    // when TCP gives up.
    set("middleman.heartbeat-interval", caf::timespan{milliseconds(c.heartbeat_interval_ms)});
    set("middleman.connection-timeout", caf::timespan{connection_timeout(cfg)});
    set("scheduler.max-threads", static_cast<size_t>(2));
    set("logger.verbosity", caf::atom("quiet"));
  }
};

/// One spelling per address (seeds are checked by the loader, peers'
/// addresses by member_from_json; anything else stays as written).
std::string canonical(const std::string& address) {
  auto hp = parse_host_port(address);
  if (!hp) return address;
  if (hp->host == "localhost") hp->host = "127.0.0.1";
  return hp->host + ":" + std::to_string(hp->port);
}

/// What the coordinator shares with the control plane's thread.
struct board {
  mutable std::mutex mu;
  json::value view;
  std::promise<void> left;  // set once the peers were told this node leaves
};

}  // namespace

struct coordinator_state {
  static inline const char* name = "cluster-coordinator";

  node* n = nullptr;
  std::shared_ptr<board> out;
  std::string token;
  milliseconds heartbeat{1000};
  milliseconds timeout{5000};
  std::optional<membership> view;
  caf::io::middleman_actor mm;
  std::set<std::string> interface;

  struct peer {
    coordinator_actor handle;
    std::string name;
    std::string address;
  };
  std::map<std::string, peer> peers;  // by process
  std::map<caf::actor_addr, std::string> process_of;

  struct dial {
    bool seed = false;
    bool busy = false;
    bool self = false;
    uint32_t failures = 0;
    milliseconds backoff{0};
    clock_type::time_point next;
    std::string last_error;
    clock_type::time_point logged;
    std::string process;  // who answered there last
  };
  std::map<std::string, dial> dials;  // by canonical address

  std::map<std::string, clock_type::time_point> refusals;  // rate-limited logs
  bool started = false;

  member_info self_info() const {
    member_info m = view->self();
    const auto s = n->summary();
    m.state = s.role;
    m.epoch = s.epoch;
    m.listener_healthy = s.listener_healthy;
    m.backlog = s.backlog;
    m.peers = view->addresses();
    return m;
  }

  std::string self_json() const { return json::serialize(to_json(self_info())); }

  bool log_now(const std::string& key) {
    auto now = clock_type::now();
    auto it = refusals.find(key);
    if (it != refusals.end() && now - it->second < relog_after) return false;
    refusals[key] = now;
    return true;
  }

  bool connected_to(const std::string& address) const {
    auto d = dials.find(address);
    if (d != dials.end() && !d->second.process.empty() && peers.count(d->second.process) != 0)
      return true;
    for (const auto& [process, p] : peers)
      if (canonical(p.address) == address) return true;
    return false;
  }

  void learn(const std::vector<std::string>& addresses) {
    const auto mine = canonical(view->self().address);
    for (const auto& a : addresses) {
      const std::string c = canonical(a);
      if (c == mine || dials.count(c) != 0) continue;
      dials[c].next = clock_type::now();
    }
  }

  void publish(clock_type::time_point now) {
    view->tick(now);
    auto stats = n->stats();
    stats->cluster_size(view->size(), view->healthy_count());
    for (const auto& l : view->listeners())
      stats->cluster_listener_health(l.listener_id, l.leader_healthy);
    for (const auto& c : view->take_leader_changes()) {
      stats->leader_change(c.listener_id);
      spdlog::info("cluster: listener '{}' is now led by {} (epoch {})", c.listener_id, c.leader,
                   c.epoch);
    }
    auto v = view->to_json(now).as_object();
    v["name"] = view->self().name;
    v["address"] = view->self().address;
    std::lock_guard<std::mutex> lock(out->mu);
    out->view = std::move(v);
  }
};

using coordinator_pointer = coordinator_actor::stateful_pointer<coordinator_state>;

namespace {

void add_peer(coordinator_pointer self, coordinator_actor handle, const member_info& m) {
  auto& st = self->state;
  auto it = st.peers.find(m.process);
  if (it != st.peers.end() && it->second.handle == handle) {
    it->second.name = m.name;
    it->second.address = m.address;
    return;
  }
  if (it != st.peers.end()) st.process_of.erase(it->second.handle.address());
  st.peers[m.process] = coordinator_state::peer{handle, m.name, m.address};
  st.process_of[handle.address()] = m.process;
  self->monitor(handle);
  st.dials[canonical(m.address)].failures = 0;
  spdlog::info("cluster: {} ({} at {}) joined the view", m.name, m.process, m.address);
}

void dial_failed(coordinator_pointer self, const std::string& address, const std::string& why) {
  auto& st = self->state;
  auto it = st.dials.find(address);
  if (it == st.dials.end()) return;
  auto& d = it->second;
  d.busy = false;
  ++d.failures;
  d.backoff =
      std::min(max_dial_backoff, d.backoff == milliseconds(0) ? st.heartbeat : d.backoff * 2);
  d.next = clock_type::now() + d.backoff;
  const auto now = clock_type::now();
  if (why != d.last_error || now - d.logged > relog_after) {
    spdlog::warn("cluster: cannot join {} {}: {} (retrying every {} ms at most)",
                 d.seed ? "seed" : "peer", address, why, max_dial_backoff.count());
    d.last_error = why;
    d.logged = now;
  }
  // An address only gossip named (a member since gone) is not worth dialing forever.
  if (!d.seed && d.failures >= 3) st.dials.erase(it);
}

void on_join_reply(coordinator_pointer self, const std::string& address, coordinator_actor h,
                   const std::string& reply) {
  auto& st = self->state;
  json::value v;
  try {
    v = json::parse(reply);
  } catch (const std::exception& e) {
    return dial_failed(self, address, std::string("unreadable join reply: ") + e.what());
  }
  if (!v.is_object() || !v.as_object().contains("ok") || !v.at("ok").is_bool())
    return dial_failed(self, address, "join reply without 'ok'");
  if (!v.at("ok").get_bool()) {
    const auto* err = v.as_object().if_contains("error");
    return dial_failed(
        self, address,
        "refused: " + (err != nullptr && err->is_string() ? std::string(err->get_string())
                                                          : std::string("no reason given")));
  }
  auto& d = st.dials[address];
  d.busy = false;
  d.failures = 0;
  d.backoff = milliseconds(0);
  d.last_error.clear();
  const auto now = clock_type::now();
  const auto* responder = v.as_object().if_contains("self");
  const auto* members = v.as_object().if_contains("view");
  if (members == nullptr || !members->is_array())
    return dial_failed(self, address, "join reply without 'view'");
  for (const auto& mv : members->get_array()) {
    member_info m;
    try {
      m = member_from_json(mv);
    } catch (const std::exception& e) {
      spdlog::warn("cluster: {} sent a member description that is not valid: {}", address,
                   e.what());
      continue;
    }
    if (m.process == st.view->self().process) continue;
    // Only the answering node is known to be alive; the rest we dial.
    if (responder != nullptr && responder->is_string() ? m.process == responder->get_string()
                                                       : canonical(m.address) == address) {
      auto verdict = st.view->observe(m, now);
      if (!verdict.accepted) {
        if (st.log_now("join:" + address))
          spdlog::error("cluster: not joining {}: {}", address, verdict.reason);
        return;
      }
      add_peer(self, h, m);
      st.dials[address].process = m.process;
    }
    st.learn({m.address});
    st.learn(m.peers);
  }
  st.publish(now);
}

void start_dial(coordinator_pointer self, const std::string& address) {
  auto& st = self->state;
  auto& d = st.dials[address];
  d.busy = true;
  const auto hp = parse_host_port(address);
  if (!hp) return dial_failed(self, address, "not a host:port address");
  self->request(st.mm, st.timeout, caf::connect_atom::value, hp->host, hp->port)
      .then(
          [=](const caf::node_id& nid, caf::strong_actor_ptr& ptr,
              const std::set<std::string>& ifs) {
            auto& st = self->state;
            if (nid == self->node()) {
              st.dials[address].busy = false;
              st.dials[address].self = true;  // our own address under another name
              return;
            }
            if (!ptr) return dial_failed(self, address, "nothing is published on that port");
            if (ifs != st.interface)
              return dial_failed(self, address,
                                 "the actor published there is not a failover coordinator of "
                                 "this version (a control plane port, or another protocol)");
            auto h = caf::actor_cast<coordinator_actor>(std::move(ptr));
            self->request(h, st.timeout, join_atom::value, st.token, st.self_json())
                .then([=](const std::string& reply) { on_join_reply(self, address, h, reply); },
                      [=](caf::error& e) {
                        dial_failed(self, address, "join: " + self->system().render(e));
                      });
          },
          [=](caf::error& e) { dial_failed(self, address, self->system().render(e)); });
}

bool local(coordinator_pointer self) {
  auto sender = self->current_sender();
  return !sender || sender->node() == self->node();
}

/// A join or heartbeat: the token, then the description, then the rules.
std::optional<member_info> admit(coordinator_pointer self, const std::string& token,
                                 const std::string& body, const char* what, std::string& why) {
  auto& st = self->state;
  auto sender = self->current_sender();
  const std::string from = sender ? caf::to_string(sender->node()) : std::string("unknown peer");
  if (!st.token.empty() && !same_token(token, st.token)) {
    why = "authentication failed: missing or wrong cluster token";
    if (st.log_now(std::string("auth:") + from))
      spdlog::warn("cluster: refused {} from {}: {} token", what, from,
                   token.empty() ? "missing" : "wrong");
    return std::nullopt;
  }
  member_info m;
  try {
    m = member_from_json(json::parse(body));
  } catch (const std::exception& e) {
    why = std::string("member description is not valid: ") + e.what();
    if (st.log_now(std::string("body:") + from))
      spdlog::warn("cluster: refused {} from {}: {}", what, from, why);
    return std::nullopt;
  }
  auto verdict = st.view->observe(m, clock_type::now());
  if (!verdict.accepted) {
    why = verdict.reason;
    if (st.log_now("name:" + m.process))
      spdlog::error("cluster: refused {} from {} ({} at {}): {}", what, m.name, m.process,
                    m.address, why);
    return std::nullopt;
  }
  if (sender) add_peer(self, caf::actor_cast<coordinator_actor>(sender), m);
  st.learn(m.peers);
  return m;
}

coordinator_actor::behavior_type coordinator(coordinator_pointer self, node* n,
                                             std::shared_ptr<board> out, member_info me) {
  auto& st = self->state;
  const auto& cfg = n->cfg();
  st.n = n;
  st.out = std::move(out);
  st.token = cfg.cluster.token;
  st.heartbeat = milliseconds(cfg.cluster.heartbeat_interval_ms);
  st.timeout = connection_timeout(cfg);
  st.view.emplace(me, st.timeout, forget_after, clock_type::now());
  st.mm = cfg.cluster.tls() ? self->system().openssl_manager().actor_handle()
                            : self->system().middleman().actor_handle();
  st.interface = self->system().message_types(caf::detail::type_list<coordinator_actor>{});
  for (const auto& s : cfg.cluster.seeds) {
    const auto c = canonical(s);
    if (c == canonical(me.address)) continue;
    auto& d = st.dials[c];
    d.seed = true;
    d.next = clock_type::now();
  }
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    auto it = st.process_of.find(dm.source);
    if (it == st.process_of.end()) return;
    const std::string process = it->second;
    st.process_of.erase(it);
    auto p = st.peers.find(process);
    if (p == st.peers.end()) return;
    const auto name = p->second.name;
    const auto address = canonical(p->second.address);
    st.peers.erase(p);
    if (st.view->lost(process, clock_type::now()))
      spdlog::warn("cluster: lost the connection to {} ({} at {}): {}", name, process, address,
                   self->system().render(dm.reason));
    // Dial it again: a restarted node answers on the same address.
    auto& d = st.dials[address];
    d.next = clock_type::now() + st.heartbeat;
    st.publish(clock_type::now());
  });
  self->set_exit_handler([self](caf::exit_msg& em) {
    auto& st = self->state;
    for (const auto& [process, p] : st.peers)
      self->send(p.handle, leave_atom::value, st.token, st.view->self().process);
    if (!st.peers.empty())
      spdlog::info("cluster: told {} peer(s) that this node leaves", st.peers.size());
    st.peers.clear();
    try {
      st.out->left.set_value();
    } catch (const std::future_error&) {
    }
    self->quit(em.reason);
  });
  return {
      [self](join_atom, const std::string& token, const std::string& body) -> std::string {
        auto& st = self->state;
        std::string why;
        auto m = admit(self, token, body, "join", why);
        if (!m) return json::serialize(json::object{{"ok", false}, {"error", why}});
        json::array members;
        for (const auto& [name, e] : st.view->members())
          if (e.reachable) members.push_back(to_json(e.self ? st.self_info() : e.info));
        st.publish(clock_type::now());
        return json::serialize(json::object{
            {"ok", true}, {"self", st.view->self().process}, {"view", std::move(members)}});
      },
      [self](heartbeat_atom, const std::string& token, const std::string& body) {
        std::string why;
        admit(self, token, body, "heartbeat", why);
      },
      [self](leave_atom, const std::string& token, const std::string& process) {
        auto& st = self->state;
        if (!st.token.empty() && !same_token(token, st.token)) return;
        auto p = st.peers.find(process);
        if (p != st.peers.end()) {
          spdlog::info("cluster: {} ({}) left", p->second.name, process);
          self->demonitor(p->second.handle.address());
          st.process_of.erase(p->second.handle.address());
          st.dials.erase(canonical(p->second.address));
          st.peers.erase(p);
        }
        st.view->leave(process);
        st.publish(clock_type::now());
      },
      [self](tick_atom, uint16_t port) {
        auto& st = self->state;
        if (!local(self) || st.started) return;
        st.started = true;
        auto me = st.view->self();
        me.address = me.address.substr(0, me.address.rfind(':') + 1) + std::to_string(port);
        st.view->update_self(me, clock_type::now());
        self->send(self, tick_atom::value);
      },
      [self](tick_atom) {
        auto& st = self->state;
        if (!local(self)) return;  // a timer of our own, never a peer's
        const auto now = clock_type::now();
        auto me = st.self_info();
        const auto body = json::serialize(to_json(me));
        st.view->update_self(std::move(me), now);
        for (const auto& [process, p] : st.peers)
          self->send(p.handle, heartbeat_atom::value, st.token, body);
        for (auto& [address, d] : st.dials)
          if (!d.busy && !d.self && now >= d.next && !st.connected_to(address))
            start_dial(self, address);
        st.publish(now);
        self->delayed_send(self, st.heartbeat, tick_atom::value);
      },
  };
}

}  // namespace

struct cluster_server::impl {
  cluster_system_config acfg;
  std::unique_ptr<caf::actor_system> sys;
  coordinator_actor actor;
  std::shared_ptr<board> out = std::make_shared<board>();
  uint16_t port = 0;
  explicit impl(const config& c) : acfg(c) {}
};

cluster_server::cluster_server(node& n) : impl_(std::make_unique<impl>(n.cfg())) {
  const auto& c = n.cfg().cluster;
  auto& d = *impl_;
  d.sys = std::make_unique<caf::actor_system>(d.acfg);
  member_info me;
  me.name = c.node_name.empty() ? host_name() : c.node_name;
  me.process = node_identity();
  me.version = observer_version();
  me.role = "all";
  me.state = n.role();
  me.listener_id = n.cfg().listener.listener_id;
  // Peers dial what a member advertises: a wildcard bind advertises the host name.
  const bool wildcard = c.bind == "0.0.0.0" || c.bind == "::" || c.bind == "[::]";
  me.address = (wildcard ? host_name() : c.bind) + ":" + std::to_string(c.port);
  d.actor = d.sys->spawn(coordinator, &n, d.out, me);
  const auto port = static_cast<uint16_t>(c.port);
  auto published = c.tls() ? caf::openssl::publish(d.actor, port, c.bind.c_str(), true)
                           : d.sys->middleman().publish(d.actor, port, c.bind.c_str(), true);
  if (!published) {
    auto why = d.sys->render(published.error());
    caf::anon_send_exit(d.actor, caf::exit_reason::user_shutdown);
    d.actor = nullptr;
    d.sys.reset();
    throw std::runtime_error("cluster coordinator cannot listen on " + c.bind + ":" +
                             std::to_string(c.port) + ": " + why);
  }
  d.port = *published;
  // The first tick names the port (picked by the system when 0) and starts it.
  caf::anon_send(d.actor, tick_atom::value, d.port);
  spdlog::info(
      "cluster: node '{}' listening on {}:{} ({}{}), {} seed(s), heartbeat {} ms, peers "
      "unreachable after {} ms",
      me.name, c.bind, d.port, c.tls() ? "TLS, peers verified" : "plain, loopback",
      c.token.empty() ? ", no token" : ", token required", c.seeds.size(), c.heartbeat_interval_ms,
      connection_timeout(n.cfg()).count());
}

void cluster_server::leave() {
  auto& d = *impl_;
  if (!d.actor) return;
  // Its exit handler tells the peers.
  auto left = d.out->left.get_future();
  caf::anon_send_exit(d.actor, caf::exit_reason::user_shutdown);
  if (left.wait_for(std::chrono::seconds(2)) == std::future_status::ready)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the bytes go out
  d.actor = nullptr;
}

cluster_server::~cluster_server() {
  auto& d = *impl_;
  leave();
  destroy_bounded(std::move(d.sys), "cluster: the coordinator");
}

uint16_t cluster_server::port() const {
  return impl_->port;
}

json::value cluster_server::view() const {
  std::lock_guard<std::mutex> lock(impl_->out->mu);
  return impl_->out->view;
}

}  // namespace fraiseql
