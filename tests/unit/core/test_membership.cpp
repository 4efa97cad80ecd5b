// The cluster's membership view (runtime/core/membership.hpp) in simulated
// time: joins, heartbeats, timeouts, lost connections, graceful leaves, unique
// names, leaders per listener id and leader changes; then RapidCheck drives
// random sequences of those against the rules the coordinator relies on.
#include "runtime/core/membership.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>
#include <boost/json.hpp>

#include <set>

using namespace fraiseql;
using std::chrono::milliseconds;
using tp = membership::clock::time_point;

namespace {

member_info member(const std::string& name, const std::string& process,
                   const std::string& state = "standby", uint64_t epoch = 0,
                   const std::string& listener = "orders") {
  member_info m;
  m.name = name;
  m.process = process;
  m.address = "127.0.0.1:" + std::to_string(7000 + name.size() * 7 + process.size());
  m.state = state;
  m.epoch = epoch;
  m.listener_id = listener;
  m.listener_healthy = state == "leader";
  return m;
}

const tp t0{};
constexpr milliseconds timeout{5000};
constexpr milliseconds forget{60000};

}  // namespace

TEST_SUITE("membership") {
  TEST_CASE(
      "a member is alive while it heartbeats, unreachable after the timeout, then forgotten") {
    membership v(member("a", "h:1", "leader", 1), timeout, forget, t0);
    CHECK(v.observe(member("b", "h:2"), t0).accepted);
    CHECK(v.size() == 2);
    CHECK(v.healthy_count() == 2);
    v.tick(t0 + milliseconds(4999));
    CHECK(v.find_name("b")->reachable);
    v.tick(t0 + milliseconds(5001));
    CHECK_FALSE(v.find_name("b")->reachable);
    CHECK(v.healthy_count() == 1);
    CHECK(v.listeners().at(0).healthy == 1);
    CHECK(v.listeners().at(0).members == 2);
    // A heartbeat brings it back.
    CHECK(v.observe(member("b", "h:2"), t0 + milliseconds(6000)).accepted);
    CHECK(v.find_name("b")->reachable);
    v.tick(t0 + milliseconds(11001));
    v.tick(t0 + milliseconds(11001) + forget + milliseconds(1));
    CHECK(v.find_name("b") == nullptr);
    CHECK(v.size() == 1);
  }

  TEST_CASE("a lost connection makes a member unreachable at once; a leave removes it") {
    membership v(member("a", "h:1"), timeout, forget, t0);
    v.observe(member("b", "h:2"), t0);
    v.observe(member("c", "h:3"), t0);
    CHECK(v.lost("h:2", t0 + milliseconds(10)));
    CHECK_FALSE(v.find_name("b")->reachable);
    CHECK(v.leave("h:3"));
    CHECK(v.find_name("c") == nullptr);
    CHECK_FALSE(v.leave("h:9"));
    CHECK_FALSE(v.leave("h:1"));  // never itself
    CHECK(v.addresses().size() == 1);
  }

  TEST_CASE("names are unique: a second live process with a taken name is refused") {
    membership v(member("a", "h:1"), timeout, forget, t0);
    auto self_clash = v.observe(member("a", "h:9"), t0);
    CHECK_FALSE(self_clash.accepted);
    CHECK(self_clash.reason.find("node names must be unique") != std::string::npos);
    CHECK(v.observe(member("b", "h:2"), t0).accepted);
    auto clash = v.observe(member("b", "h:3"), t0 + milliseconds(100));
    CHECK_FALSE(clash.accepted);
    CHECK(clash.reason.find("'b' is already a member (h:2") != std::string::npos);
    CHECK(v.find_name("b")->info.process == "h:2");
    // Once the holder is unreachable, the name goes to the new process (a restart).
    v.lost("h:2", t0 + milliseconds(200));
    CHECK(v.observe(member("b", "h:3"), t0 + milliseconds(300)).accepted);
    CHECK(v.find_name("b")->info.process == "h:3");
    CHECK(v.find_process("h:2") == nullptr);
  }

  TEST_CASE("the leader of a listener id: reachable first, then the newest epoch; changes count") {
    membership v(member("a", "h:1", "standby"), timeout, forget, t0);
    v.observe(member("b", "h:2", "leader", 4), t0);
    auto l = v.listeners();
    REQUIRE(l.size() == 1);
    CHECK(l[0].leader == "b");
    CHECK(l[0].epoch == 4);
    CHECK(l[0].leader_healthy);
    CHECK(v.take_leader_changes().empty());  // the first leader seen is no change
    // b freezes: c takes over with a newer epoch; b's stale claim loses.
    v.observe(member("c", "h:3", "leader", 5), t0 + milliseconds(100));
    CHECK(v.listeners()[0].leader == "c");
    auto changes = v.take_leader_changes();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].listener_id == "orders");
    CHECK(changes[0].leader == "c");
    CHECK(changes[0].epoch == 5);
    CHECK(v.take_leader_changes().empty());
    // An unreachable claim never wins over a reachable one, whatever its epoch.
    v.observe(member("d", "h:4", "leader", 9), t0 + milliseconds(150));
    v.lost("h:4", t0 + milliseconds(200));
    CHECK(v.listeners()[0].leader == "c");
    // With no reachable claim left, the newest unreachable one shows, not healthy.
    v.lost("h:3", t0 + milliseconds(300));
    v.lost("h:2", t0 + milliseconds(300));
    CHECK(v.listeners()[0].leader == "d");
    CHECK_FALSE(v.listeners()[0].leader_healthy);
    CHECK(v.listeners()[0].healthy == 1);  // a, standing by
  }

  TEST_CASE("a leader whose listener is unhealthy is not healthy; listener ids are kept apart") {
    membership v(member("a", "h:1", "standby", 0, "orders"), timeout, forget, t0);
    auto sick = member("b", "h:2", "leader", 2, "orders");
    sick.listener_healthy = false;
    v.observe(sick, t0);
    v.observe(member("c", "h:3", "leader", 7, "billing"), t0);
    auto l = v.listeners();
    REQUIRE(l.size() == 2);
    CHECK(l[0].listener_id == "billing");
    CHECK(l[0].leader == "c");
    CHECK(l[0].members == 1);
    CHECK(l[1].listener_id == "orders");
    CHECK(l[1].leader == "b");
    CHECK_FALSE(l[1].leader_healthy);
    CHECK(l[1].healthy == 1);
    CHECK(l[1].members == 2);
  }

  TEST_CASE("member descriptions round-trip; bad ones are refused naming the field") {
    auto m = member("a", "h:1", "leader", 3);
    m.backlog = 12;
    m.peers = {"127.0.0.1:1", "127.0.0.1:2"};
    auto back = member_from_json(to_json(m));
    CHECK(back.name == "a");
    CHECK(back.epoch == 3);
    CHECK(back.backlog == std::optional<uint64_t>(12));
    CHECK(back.peers.size() == 2);
    auto bad = [](const char* text) {
      try {
        member_from_json(boost::json::parse(text));
      } catch (const std::invalid_argument& e) {
        return std::string(e.what());
      }
      return std::string("accepted");
    };
    CHECK(bad("[1]") == "member description is not a JSON object");
    CHECK(bad(R"({"address":"x:1","process":"p","state":"standby"})") ==
          "member description lacks 'name'");
    CHECK(bad(R"({"name":"","address":"x:1","process":"p","state":"s"})") ==
          "member field 'name' is empty");
    CHECK(bad(R"({"name":"a","address":"x:1","process":"p","state":"s","epoch":-1})") ==
          "member field 'epoch' is not a non-negative integer");
    CHECK(bad(R"({"name":"a\n","address":"x:1","process":"p","state":"s"})") ==
          "member field 'name' holds a control character");
    CHECK(bad(R"({"name":"a","address":"x:1","process":"p","state":"s","peers":"x"})") ==
          "member field 'peers' is not a list");
    // A peer's address is dialed: it must be host:port (a bad one never reaches the dialer).
    CHECK(bad(R"({"name":"a","address":"nowhere","process":"p","state":"s"})") ==
          "member field 'address' is not host:port");
    CHECK(bad(R"({"name":"a","address":"x:1","process":"p","state":"s","peers":["x:99999"]})") ==
          "member field 'peers' holds an entry that is not an address");
  }

  TEST_CASE("property: the view's rules hold under any sequence of heartbeats, losses, leaves") {
    const bool ok = rc::check("membership rules", [] {
      membership v(member("n0", "p0", "standby"), timeout, forget, t0);
      tp now = t0;
      const auto steps = *rc::gen::inRange(1, 200);
      for (int s = 0; s < steps; ++s) {
        const int op = *rc::gen::inRange(0, 5);
        const int name = *rc::gen::inRange(0, 5);
        const int proc = *rc::gen::inRange(0, 8);
        const std::string n = "n" + std::to_string(name);
        const std::string p = "p" + std::to_string(proc);
        now += milliseconds(*rc::gen::inRange(0, 3000));
        if (op <= 1) {
          const bool lead = *rc::gen::arbitrary<bool>();
          const auto* holder = v.find_name(n);
          const bool clash =
              holder != nullptr && holder->info.process != p && (holder->self || holder->reachable);
          const auto* same = v.find_process(p);
          const bool is_self = same != nullptr && same->self;
          auto verdict =
              v.observe(member(n, p, lead ? "leader" : "standby", *rc::gen::inRange(0, 10)), now);
          if (!is_self) RC_ASSERT(verdict.accepted == !clash);
          if (verdict.accepted && !is_self) {
            RC_ASSERT(v.find_name(n)->info.process == p);
            RC_ASSERT(v.find_name(n)->reachable);
          }
        } else if (op == 2) {
          v.lost(p, now);
        } else if (op == 3) {
          v.leave(p);
        } else {
          v.tick(now);
        }
        // Itself: always there, always reachable.
        RC_ASSERT(v.find_name("n0") != nullptr);
        RC_ASSERT(v.find_name("n0")->self);
        // One entry per process; counts agree.
        std::set<std::string> processes;
        for (const auto& [k, e] : v.members()) {
          RC_ASSERT(processes.insert(e.info.process).second);
          RC_ASSERT(k == e.info.name);
          // Right after a tick, nobody silent past the timeout counts as reachable.
          if (op == 4 && !e.self && e.reachable) RC_ASSERT(now - e.last_heard <= timeout);
        }
        RC_ASSERT(v.healthy_count() <= v.size());
        // A reachable claim always wins the listener over unreachable ones.
        for (const auto& l : v.listeners()) {
          if (l.leader.empty()) continue;
          const auto* lead = v.find_name(l.leader);
          RC_ASSERT(lead != nullptr);
          RC_ASSERT(lead->info.state == "leader");
          for (const auto& [k, e] : v.members())
            if (e.info.state == "leader" && e.info.listener_id == l.listener_id) {
              if (e.reachable && !lead->reachable) RC_FAIL("an unreachable leader shown");
              if (e.reachable == lead->reachable) RC_ASSERT(e.info.epoch <= lead->info.epoch);
            }
        }
      }
    });
    CHECK(ok);
  }
}
