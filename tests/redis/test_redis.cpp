// The Redis layer against a real redis-server: URL parsing, connections,
// pool, pipelining, the dedup claim protocol (races, expiry), the result
// cache, and an outage (kill -9, restart) in the middle of batches.
#include "runtime/core/dedup.hpp"
#include "runtime/core/redis_url.hpp"
#include "runtime/core/result_cache.hpp"
#include "runtime/io/redis/cache.hpp"
#include "runtime/io/redis/connection.hpp"
#include "runtime/io/redis/dedup.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <thread>

#include <csignal>

#include <unistd.h>

using namespace fraiseql;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

int sh(const std::string& cmd) {
  return std::system((cmd + " </dev/null >/dev/null").c_str());
}

/// NAME=value from a file (an empty name: the first line).
std::string env_value(const std::string& file, const std::string& name) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (name.empty()) return line;
    if (line.rfind(name + "=", 0) == 0) return line.substr(name.size() + 1);
  }
  return {};
}

/// A redis-server of our own (scripts/redis.sh) in REDIS_SCRATCH_DIR/<name>.
struct private_server {
  std::string dir;
  std::string password;
  uint16_t port = 0;

  explicit private_server(const std::string& name, std::string pw = "")
      : dir(std::string(REDIS_SCRATCH_DIR) + "/" + name + "-" + std::to_string(getpid())),
        password(std::move(pw)) {
    const std::string prefix = password.empty() ? "" : "REDIS_PASSWORD='" + password + "' ";
    REQUIRE(sh(prefix + REDIS_SH + " start " + dir) == 0);
    port = static_cast<uint16_t>(std::stoi(env_value(dir + "/env", "REDIS_PORT")));
  }
  ~private_server() { sh(std::string(REDIS_SH) + " stop " + dir); }
  void kill() { REQUIRE(sh(std::string(REDIS_SH) + " kill " + dir) == 0); }
  void restart() { REQUIRE(sh(std::string(REDIS_SH) + " restart " + dir) == 0); }
  std::string url() const {
    return "redis://" + (password.empty() ? "" : ":" + password + "@") +
           "127.0.0.1:" + std::to_string(port);
  }
};

/// The fixture's server (CTest starts it); when the binary runs alone, one of
/// our own for the whole run.
std::string fixture_url() {
  static const std::string url = [] {
    const std::string env = std::string(REDIS_FIXTURE_DIR) + "/env";
    std::string u = env_value(env, "FRAISEQL_REDIS_URL");
    if (!u.empty()) return u;
    static private_server own("standalone");
    return own.url();
  }();
  return url;
}

redis_connection_options options_for(const std::string& url) {
  redis_connection_options o;
  o.url = redis_url::parse(url);
  o.connect_timeout = 2000ms;
  o.command_timeout = 2000ms;
  o.reconnect_initial_delay = 50ms;
  o.reconnect_max_delay = 500ms;
  return o;
}

/// Ids no other test (or earlier run) uses.
std::string unique_prefix(const char* what) {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::string(what) + "-" + std::to_string(getpid()) + "-" + std::to_string(rng()) + "-";
}

std::vector<std::string> make_ids(const std::string& prefix, size_t n) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < n; ++i) ids.push_back(prefix + std::to_string(i));
  return ids;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

/// Round trips and commands a redis-server processed between construction and
/// since(), from its INFO stats: total_reads_processed (one per read of a
/// client socket: one per round trip of a batch that fits one read) and
/// total_commands_processed. What the meter's own INFO calls add is measured
/// (two samples back to back) and subtracted. Use a server of the test's own.
struct round_trip_meter {
  struct cost {
    long long reads = 0, commands = 0;
  };
  redis_connection* conn;
  cost overhead, start;

  explicit round_trip_meter(redis_connection& c) : conn(&c) {
    const cost first = sample();
    start = sample();
    overhead = {start.reads - first.reads, start.commands - first.commands};
  }

  cost sample() {
    const std::string info = conn->command({"INFO", "stats"}).str;
    auto field = [&](const std::string& name) {
      const auto at = info.find("\n" + name + ":");
      REQUIRE(at != std::string::npos);
      return std::stoll(info.substr(at + name.size() + 2));
    };
    return {field("total_reads_processed"), field("total_commands_processed")};
  }

  cost since() {
    const cost now = sample();
    return {now.reads - start.reads - overhead.reads,
            now.commands - start.commands - overhead.commands};
  }
};

}  // namespace

TEST_SUITE("redis") {
  TEST_CASE("url: forms, defaults, password and database") {
    auto u = redis_url::parse("redis://localhost");
    CHECK(u.host == "localhost");
    CHECK(u.port == 6379);
    CHECK(u.db == 0);
    CHECK(u.password.empty());
    CHECK_FALSE(u.tls);

    u = redis_url::parse("redis://:s3cr%40t@10.0.0.5:6380/2");
    CHECK(u.host == "10.0.0.5");
    CHECK(u.port == 6380);
    CHECK(u.username.empty());
    CHECK(u.password == "s3cr@t");
    CHECK(u.db == 2);
    CHECK(u.to_string() == "redis://:***@10.0.0.5:6380/2");

    u = redis_url::parse("REDIS://app:p@ss:w/rd@cache.internal/15");
    CHECK(u.username == "app");
    CHECK(u.password == "p@ss:w/rd");  // raw '@', ':' and '/' in a password still parse
    CHECK(u.host == "cache.internal");
    CHECK(u.db == 15);
    CHECK(u.to_string() == "redis://app:***@cache.internal:6379/15");

    u = redis_url::parse("redis://[::1]:7000/");
    CHECK(u.host == "::1");
    CHECK(u.port == 7000);
    CHECK(u.endpoint() == "[::1]:7000");
  }

  TEST_CASE("url: errors name the problem and never show the password") {
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"localhost:6379", "expected redis://"},
        {"http://:hunter2@host", "unsupported scheme 'http'"},
        {"redis://:hunter2@", "missing host"},
        {"redis://:hunter2@host:0", "port '0' is not a number in 1..65535"},
        {"redis://:hunter2@host:65536", "port '65536'"},
        {"redis://:hunter2@host:abc", "port 'abc'"},
        {"redis://:hunter2@host/x", "database 'x' is not a number"},
        {"redis://:hunter2@host/1?timeout=3", "query parameters"},
        {"redis://hunter2@host", "has no ':'"},
        {"redis://user:@host", "empty password"},
        {"redis://:hunter2%zz@host", "invalid percent-escape in the password"},
        {"redis://:hunter2@::1:6379", "in brackets"},
        {"redis://:hunter2@[::1:6379", "unterminated '['"},
    };
    for (const auto& [url, expected] : bad) {
      CAPTURE(url);
      const std::string msg = message_of([&] { redis_url::parse(url); });
      CHECK(msg.find(expected) != std::string::npos);
      CHECK(msg.find("hunter2") == std::string::npos);
    }
    CHECK_THROWS_AS(redis_url::parse("redis://"), std::invalid_argument);
    CHECK(redact_redis_url("redis://u:hunter2@h:1/0") == "redis://u:***@h:1/0");
    CHECK(redact_redis_url("redis://hunter2@h") == "redis://***@h");
    CHECK(redact_redis_url("redis://h:1") == "redis://h:1");
  }

  TEST_CASE("url: rediss:// (TLS) is refused clearly by this build") {
    CHECK_FALSE(redis_tls_supported());
    const std::string msg =
        message_of([] { redis_url::parse("rediss://:hunter2@cache.example.com:6380/0"); });
    CHECK(msg.find("TLS (rediss://) is not supported by this build's hiredis") !=
          std::string::npos);
    CHECK(msg.find("hunter2") == std::string::npos);
  }

  TEST_CASE("connection: binary-safe arguments, error replies, pipelines") {
    redis_connection c{options_for(fixture_url())};
    const std::string key = unique_prefix("bin") + "k";
    const std::string value("a\0b\r\n%s\xff", 8);
    CHECK(c.command({"SET", key, value}).is_ok());
    auto r = c.command({"GET", key});
    CHECK(r.type == redis_reply::kind::string);
    CHECK(r.str == value);
    CHECK(c.command({"GET", key + "-missing"}).is_nil());
    r = c.command({"NOSUCHCOMMAND", "x"});
    CHECK(r.is_error());  // returned, not thrown
    auto replies = c.pipeline({{"INCR", key + "-n"},
                               {"INCR", key + "-n"},
                               {"LPUSH", key + "-l", "x"},
                               {"LRANGE", key + "-l", "0", "-1"},
                               {"DEL", key, key + "-n", key + "-l"}});
    REQUIRE(replies.size() == 5);
    CHECK(replies[1].integer == 2);
    CHECK(replies[3].type == redis_reply::kind::array);
    CHECK(replies[3].elements.at(0).str == "x");
    CHECK(replies[4].integer == 3);
    CHECK(c.connects() == 1);
  }

  TEST_CASE("connection: refused endpoint fails, then fails fast during backoff") {
    auto o = options_for("redis://127.0.0.1:1");
    o.reconnect_initial_delay = 2000ms;
    o.reconnect_max_delay = 2000ms;
    redis_connection c{o};
    const std::string first = message_of([&] { c.command({"PING"}); });
    CHECK(first.find("cannot connect to redis at 127.0.0.1:1") != std::string::npos);
    const auto t0 = steady_clock::now();
    const std::string second = message_of([&] { c.command({"PING"}); });
    CHECK(second.find("next connection attempt in") != std::string::npos);
    CHECK(steady_clock::now() - t0 < 100ms);
    CHECK_THROWS_AS(c.command({"PING"}), redis_unavailable);
  }

  TEST_CASE("connection: a command timeout drops the connection, the next call reconnects") {
    auto o = options_for(fixture_url());
    o.command_timeout = 200ms;
    redis_connection c{o};
    const std::string key = unique_prefix("blpop") + "empty";
    const auto t0 = steady_clock::now();
    const std::string msg = message_of([&] { c.command({"BLPOP", key, "2"}); });
    CHECK(msg.find("timed out") != std::string::npos);
    CHECK(steady_clock::now() - t0 < 1500ms);
    CHECK_FALSE(c.connected());
    std::this_thread::sleep_for(100ms);  // the reconnect backoff after a failure (50 ms)
    CHECK(c.command({"PING"}).str == "PONG");
    CHECK(c.connects() == 2);
  }

  TEST_CASE("connection: password (requirepass), ACL user and database index") {
    private_server srv("auth", "pa:ss@w/rd");
    const std::string base = "127.0.0.1:" + std::to_string(srv.port);
    // The password percent-encoded, as in a config file.
    redis_connection c{options_for("redis://:pa%3Ass%40w%2Frd@" + base + "/3")};
    const std::string key = unique_prefix("db") + "k";
    CHECK(c.command({"SET", key, "in-3"}).is_ok());
    redis_connection c0{options_for("redis://:pa%3Ass%40w%2Frd@" + base + "/0")};
    CHECK(c0.command({"GET", key}).is_nil());
    CHECK(c.command({"GET", key}).str == "in-3");

    CHECK(c.command({"ACL", "SETUSER", "tester", "on", ">t0ps3cret", "~*", "+@all"}).is_ok());
    redis_connection u{options_for("redis://tester:t0ps3cret@" + base + "/1")};
    CHECK(u.command({"ACL", "WHOAMI"}).str == "tester");

    redis_connection wrong{options_for("redis://:wr0ngpass@" + base)};
    std::string msg;
    try {
      wrong.command({"PING"});
    } catch (const redis_error& e) {  // permanent: a retry will not fix it
      msg = e.what();
    }
    CHECK(msg.find("AUTH refused") != std::string::npos);
    CHECK(msg.find("wr0ngpass") == std::string::npos);

    redis_connection none{options_for("redis://" + base)};
    CHECK(none.command({"GET", key}).is_error());  // NOAUTH
    redis_connection bad_db{options_for("redis://:pa%3Ass%40w%2Frd@" + base + "/99")};
    msg = message_of([&] { bad_db.command({"PING"}); });
    CHECK(msg.find("SELECT 99 refused") != std::string::npos);
  }

  TEST_CASE("pool: concurrent threads, exclusive leases, bounded waits") {
    redis_pool pool{options_for(fixture_url()), 3};
    const std::string key = unique_prefix("pool") + "counter";
    std::mutex m;
    std::map<redis_connection*, int> in_use;
    std::atomic<int> overlaps{0};
    std::vector<std::thread> threads;
    constexpr int n_threads = 8, per_thread = 300;
    for (int t = 0; t < n_threads; ++t)
      threads.emplace_back([&] {
        for (int i = 0; i < per_thread; ++i) {
          auto c = pool.acquire();
          {
            std::lock_guard<std::mutex> lk(m);
            if (++in_use[&*c] > 1) ++overlaps;
          }
          c->command({"INCR", key});
          std::lock_guard<std::mutex> lk(m);
          --in_use[&*c];
        }
      });
    for (auto& t : threads) t.join();
    CHECK(overlaps == 0);
    CHECK(in_use.size() <= 3);
    CHECK(pool.idle() == 3);
    auto c = pool.acquire();
    CHECK(c->command({"GET", key}).str == std::to_string(n_threads * per_thread));
    c->command({"DEL", key});

    auto o = options_for(fixture_url());
    o.acquire_timeout = 100ms;
    redis_pool one{o, 1};
    auto held = one.acquire();
    CHECK_FALSE(one.try_acquire().has_value());
    const auto t0 = steady_clock::now();
    std::string msg;
    std::thread waiter([&] { msg = message_of([&] { one.acquire(); }); });
    waiter.join();
    CHECK(msg.find("stayed busy for 100 ms") != std::string::npos);
    CHECK(steady_clock::now() - t0 >= 90ms);
    { auto moved = std::move(held); }  // returned when the moved-to lease ends
    CHECK(one.try_acquire().has_value());
    one.check();
  }

  TEST_CASE("pipelining: a batch of N commands is one round trip, not N (server counters)") {
    // A server of our own: its counters see only this test's traffic.
    private_server srv("roundtrips");
    redis_connection c{options_for(srv.url())};
    redis_connection stats{options_for(srv.url())};
    const std::string prefix = unique_prefix("rt");
    constexpr size_t n = 100;  // ~6 KB of commands: one write, one server read
    std::vector<std::vector<std::string>> cmds;
    for (size_t i = 0; i < n; ++i)
      cmds.push_back({"SET", prefix + std::to_string(i), "v", "PX", "60000"});
    CHECK(c.command({"PING"}).type == redis_reply::kind::status);  // connected
    round_trip_meter meter{stats};
    auto replies = c.pipeline(cmds);
    auto cost = meter.since();
    CHECK(std::all_of(replies.begin(), replies.end(),
                      [](const redis_reply& r) { return r.is_ok(); }));
    CHECK(cost.commands == n);
    CHECK(cost.reads == 1);  // one round trip for the batch
    // The meter tells the two apart: the same batch one command at a time.
    meter = round_trip_meter{stats};
    for (const auto& cmd : cmds) c.command(cmd);
    cost = meter.since();
    CHECK(cost.commands == n);
    CHECK(cost.reads == n);
    // Throughput, for information only (not asserted: timing depends on the machine).
    constexpr size_t big = 20000;
    std::vector<std::vector<std::string>> many;
    for (size_t i = 0; i < big; ++i)
      many.push_back({"SET", prefix + "b" + std::to_string(i), "v", "PX", "60000"});
    auto t0 = steady_clock::now();
    for (size_t i = 0; i < big; i += 1000)
      c.pipeline(std::vector<std::vector<std::string>>(many.begin() + i, many.begin() + i + 1000));
    const double pipelined_s = std::chrono::duration<double>(steady_clock::now() - t0).count();
    t0 = steady_clock::now();
    for (size_t i = 0; i < 2000; ++i) c.command(many[i]);
    const double single_s = std::chrono::duration<double>(steady_clock::now() - t0).count();
    std::cout << "[redis] SET pipelined (batches of 1000): " << static_cast<long>(big / pipelined_s)
              << "/s; one round trip each: " << static_cast<long>(2000 / single_s) << "/s\n";
    std::vector<std::vector<std::string>> gets;
    for (size_t i = 0; i < big; ++i) gets.push_back({"GET", prefix + "b" + std::to_string(i)});
    replies = c.pipeline(gets);
    CHECK(std::all_of(replies.begin(), replies.end(),
                      [](const redis_reply& r) { return r.str == "v"; }));
  }

  TEST_CASE("dedup: claiming a batch of N events is one round trip (two when some are taken)") {
    private_server srv("claim-roundtrips");
    redis_pool pool{options_for(srv.url()), 1};
    redis_dedup d{pool, 60000ms};
    redis_connection stats{options_for(srv.url())};
    const std::string a = make_owner_token("rt-a"), b = make_owner_token("rt-b");
    constexpr size_t n = 60;  // ~6 KB of SET NX commands: one write, one server read
    CHECK(d.claim(make_ids(unique_prefix("warm"), 1), a, 5000ms)[0] == claim_status::claimed);
    const auto ids = make_ids(unique_prefix("c"), n);

    round_trip_meter meter{stats};
    auto s = d.claim(ids, a, 5000ms);
    auto cost = meter.since();
    CHECK(
        std::all_of(s.begin(), s.end(), [](claim_status x) { return x == claim_status::claimed; }));
    CHECK(cost.commands == n);  // one SET NX per event...
    CHECK(cost.reads == 1);     // ...all in one round trip

    // Taken by another owner: the SET NX batch, then one GET batch for the
    // ones not set: two round trips whatever N is.
    meter = round_trip_meter{stats};
    s = d.claim(ids, b, 5000ms);
    cost = meter.since();
    CHECK(std::all_of(s.begin(), s.end(), [](claim_status x) { return x == claim_status::busy; }));
    CHECK(cost.commands == 2 * n);
    CHECK(cost.reads == 2);
  }

  TEST_CASE("dedup: claim / confirm / release / extend on Redis") {
    redis_pool pool{options_for(fixture_url()), 2};
    redis_dedup d{pool, 60000ms};
    const std::string a = make_owner_token("node-a"), b = make_owner_token("node-b");
    CHECK(a != b);
    const auto ids = make_ids(unique_prefix("proto"), 4);

    auto s = d.claim(ids, a, 5000ms);
    CHECK(
        std::all_of(s.begin(), s.end(), [](claim_status x) { return x == claim_status::claimed; }));
    auto c = pool.acquire();
    CHECK(c->command({"GET", dedup_key(ids[0])}).str == a);  // key event:<id>, value the owner
    CHECK(d.claim({ids[0]}, b, 5000ms)[0] == claim_status::busy);
    CHECK(d.claim({ids[0]}, a, 5000ms)[0] == claim_status::claimed);  // own claim (retry)

    CHECK(d.confirm(ids[0], b) == confirm_status::lost);
    CHECK(d.confirm(ids[0], a) == confirm_status::confirmed);
    CHECK(d.confirm(ids[0], a) == confirm_status::already_done);
    CHECK(c->command({"GET", dedup_key(ids[0])}).str == "done");
    const long long pttl = c->command({"PTTL", dedup_key(ids[0])}).integer;
    CHECK(pttl > 55000);  // the dedup window, not the claim TTL
    CHECK(pttl <= 60000);
    CHECK(d.claim({ids[0]}, b, 5000ms)[0] == claim_status::done);

    CHECK_FALSE(d.release(ids[1], b));  // not b's claim
    CHECK(d.release(ids[1], a));
    CHECK(c->command({"EXISTS", dedup_key(ids[1])}).integer == 0);
    CHECK(d.claim({ids[1]}, b, 5000ms)[0] == claim_status::claimed);

    auto e = d.extend({ids[2], ids[1]}, a, 30000ms);
    CHECK(e[0]);
    CHECK_FALSE(e[1]);  // b holds ids[1]
    CHECK(c->command({"PTTL", dedup_key(ids[2])}).integer > 25000);

    // Never claimed (or long expired): confirming still marks it done.
    const std::string fresh = unique_prefix("proto-fresh") + "x";
    CHECK(d.confirm(fresh, a) == confirm_status::confirmed_after_expiry);
    CHECK(d.claim({fresh}, b, 5000ms)[0] == claim_status::done);

    auto all = d.confirm_all({ids[1], ids[2], ids[3]}, a);
    CHECK(all[0] == confirm_status::lost);
    CHECK(all[1] == confirm_status::confirmed);
    CHECK(all[2] == confirm_status::confirmed);

    CHECK_THROWS_AS(d.claim({ids[0]}, "done", 1000ms), std::invalid_argument);
    CHECK_THROWS_AS(d.claim({""}, a, 1000ms), std::invalid_argument);
    CHECK_THROWS_AS(d.claim({ids[0]}, a, 0ms), std::invalid_argument);
    CHECK(d.claim({}, a, 1000ms).empty());
  }

  TEST_CASE(
      "dedup: a newer lease epoch of the same listener takes a dead leader's claims at once") {
    redis_pool pool{options_for(fixture_url()), 2};
    redis_dedup d{pool, 60000ms};
    auto c = pool.acquire();
    const std::string p = unique_prefix("takeover");
    const std::vector<std::string> ids{p + "1", p + "2", p + "3", p + "4"};
    const std::string family = p + "listener";
    const auto dead = make_owner_token("dead", family, 3);
    const auto next = make_owner_token("next", family, 4);
    const auto stranger = make_owner_token("stranger", p + "other", 9);
    CHECK(d.claim(ids, dead, 30000ms) == std::vector<claim_status>(4, claim_status::claimed));
    CHECK(d.confirm(ids[3], dead) == confirm_status::confirmed);
    CHECK(d.claim({ids[0]}, stranger, 5000ms)[0] == claim_status::busy);
    CHECK(d.claim({ids[0]}, make_owner_token("plain"), 5000ms)[0] == claim_status::busy);
    // The successor of the dead leader does not wait out the 30 s claims.
    CHECK(d.claim(ids, next, 5000ms) ==
          std::vector<claim_status>{claim_status::claimed, claim_status::claimed,
                                    claim_status::claimed, claim_status::done});
    CHECK(c->command({"GET", dedup_key(ids[0])}).str == next);
    const long long pttl = c->command({"PTTL", dedup_key(ids[0])}).integer;
    CHECK(pttl > 0);
    CHECK(pttl <= 5000);  // the successor's own claim TTL
    CHECK(d.claim({ids[1]}, dead, 5000ms)[0] == claim_status::busy);  // never back to an older one
    CHECK(d.confirm(ids[0], dead) == confirm_status::lost);           // the old leader, thawed
    CHECK(d.confirm(ids[0], next) == confirm_status::confirmed);
  }

  TEST_CASE("dedup: batches larger than one script chunk keep their order, survive SCRIPT FLUSH") {
    redis_pool pool{options_for(fixture_url()), 2};
    redis_dedup d{pool, 60000ms};
    const std::string a = make_owner_token("chunk-a"), b = make_owner_token("chunk-b");
    const auto ids = make_ids(unique_prefix("chunk"), 700);  // 3 chunks of 256 keys
    std::vector<std::string> bs;
    for (size_t i = 0; i < ids.size(); i += 3) bs.push_back(ids[i]);
    d.claim(bs, b, 60000ms);
    auto s = d.claim(ids, a, 60000ms);
    for (size_t i = 0; i < ids.size(); ++i)
      CHECK(s[i] == (i % 3 == 0 ? claim_status::busy : claim_status::claimed));
    {
      auto c = pool.acquire();
      CHECK(c->command({"SCRIPT", "FLUSH"}).is_ok());  // as after a restart
    }
    auto r = d.confirm_all(ids, a);
    for (size_t i = 0; i < ids.size(); ++i)
      CHECK(r[i] == (i % 3 == 0 ? confirm_status::lost : confirm_status::confirmed));
    auto e = d.extend(ids, b, 60000ms);
    auto rel = d.release_all(ids, b);
    for (size_t i = 0; i < ids.size(); ++i) {
      CHECK(e[i] == (i % 3 == 0));
      CHECK(rel[i] == (i % 3 == 0));
    }
    s = d.claim(ids, b, 60000ms);
    for (size_t i = 0; i < ids.size(); ++i)
      CHECK(s[i] == (i % 3 == 0 ? claim_status::claimed : claim_status::done));
  }

  TEST_CASE("dedup: two workers racing for the same ids run each side effect once") {
    redis_pool pool{options_for(fixture_url()), 4};
    redis_dedup d{pool, 60000ms};
    constexpr size_t n = 2000, batch = 100;
    const auto ids = make_ids(unique_prefix("race"), n);
    std::vector<std::atomic<int>> runs(n);
    std::vector<std::atomic<int>> failures(n);
    std::atomic<size_t> busy_seen{0}, done_seen{0};

    auto worker = [&](unsigned seed) {
      const std::string me = make_owner_token("worker" + std::to_string(seed));
      std::mt19937 rng(seed);
      std::vector<size_t> order(n);
      std::iota(order.begin(), order.end(), size_t{0});
      std::shuffle(order.begin(), order.end(), rng);
      std::vector<size_t> pending = order;
      while (!pending.empty()) {
        std::vector<size_t> next;
        for (size_t off = 0; off < pending.size(); off += batch) {
          std::vector<size_t> idx(pending.begin() + off,
                                  pending.begin() + std::min(pending.size(), off + batch));
          std::vector<std::string> batch_ids;
          for (size_t i : idx) batch_ids.push_back(ids[i]);
          const auto st = d.claim(batch_ids, me, 10000ms);
          std::vector<std::string> ok, failed;
          for (size_t k = 0; k < idx.size(); ++k) {
            if (st[k] == claim_status::claimed) {
              if (rng() % 10 == 0) {  // the side effect failed: release, retry later
                ++failures[idx[k]];
                failed.push_back(batch_ids[k]);
                next.push_back(idx[k]);
              } else {
                ++runs[idx[k]];
                ok.push_back(batch_ids[k]);
              }
            } else if (st[k] == claim_status::busy) {
              ++busy_seen;
              next.push_back(idx[k]);
            } else {
              ++done_seen;
            }
          }
          for (auto r : d.confirm_all(ok, me)) CHECK(r == confirm_status::confirmed);
          for (bool r : d.release_all(failed, me)) CHECK(r);
        }
        pending = std::move(next);
        if (!pending.empty()) std::this_thread::sleep_for(1ms);
      }
    };
    std::thread t1(worker, 1u), t2(worker, 2u);
    t1.join();
    t2.join();
    size_t twice = 0, never = 0;
    for (size_t i = 0; i < n; ++i) {
      if (runs[i] > 1) ++twice;
      if (runs[i] == 0) ++never;
    }
    CHECK(twice == 0);
    CHECK(never == 0);
    std::cout << "[redis] race: " << n << " ids, busy " << busy_seen << ", done " << done_seen
              << ", failed-and-retried "
              << std::accumulate(failures.begin(), failures.end(), 0,
                                 [](int s, const std::atomic<int>& x) { return s + x.load(); })
              << "\n";
    auto s = d.claim(ids, make_owner_token("late"), 1000ms);
    CHECK(std::all_of(s.begin(), s.end(), [](claim_status x) { return x == claim_status::done; }));
  }

  TEST_CASE("dedup: an expired claim can be taken over and the slow owner's confirm is lost") {
    redis_pool pool{options_for(fixture_url()), 2};
    redis_dedup d{pool, 60000ms};
    const std::string slow = make_owner_token("slow"), other = make_owner_token("other");
    const auto ids = make_ids(unique_prefix("expiry"), 2);
    CHECK(d.claim(ids, slow, 100ms)[0] == claim_status::claimed);
    CHECK(d.claim({ids[0]}, other, 100ms)[0] == claim_status::busy);
    std::this_thread::sleep_for(150ms);
    // ids[0]: taken over by another worker; ids[1]: expired, nobody took it.
    CHECK(d.claim({ids[0]}, other, 5000ms)[0] == claim_status::claimed);
    CHECK_FALSE(d.extend({ids[0]}, slow, 5000ms)[0]);
    CHECK(d.confirm(ids[0], slow) == confirm_status::lost);
    CHECK(d.confirm(ids[1], slow) == confirm_status::confirmed_after_expiry);
    CHECK(d.confirm(ids[0], other) == confirm_status::confirmed);
  }

  TEST_CASE("result cache: action_result:<key>, TTL, pipelined get_many") {
    redis_pool pool{options_for(fixture_url()), 2};
    redis_result_cache cache{pool, 60000ms};
    const std::string p = unique_prefix("cache");
    CHECK_FALSE(cache.get(p + "a").has_value());
    const std::string bin("x\0y", 3);
    cache.put(p + "a", bin);
    cache.put(p + "short", "v", 100ms);
    CHECK(cache.get(p + "a") == bin);
    auto c = pool.acquire();
    CHECK(c->command({"GET", action_result_key(p + "a")}).str == bin);
    CHECK(c->command({"PTTL", action_result_key(p + "a")}).integer > 55000);
    auto many = cache.get_many({p + "a", p + "missing", p + "short"});
    CHECK(many[0] == bin);
    CHECK_FALSE(many[1].has_value());
    CHECK(many[2] == std::string("v"));
    std::this_thread::sleep_for(150ms);
    CHECK_FALSE(cache.get(p + "short").has_value());
  }

  TEST_CASE("outage: redis killed mid-batch -> redis_unavailable, then recovery after restart") {
    private_server srv("outage");
    auto o = options_for(srv.url());
    o.command_timeout = 1000ms;
    o.reconnect_initial_delay = 20ms;
    o.reconnect_max_delay = 200ms;
    redis_pool pool{o, 2};
    redis_dedup d{pool, 60000ms};
    const std::string me = make_owner_token("outage");
    const std::string prefix = unique_prefix("outage");

    // An idle pooled connection survives a graceful restart: the first call
    // finds it closed and resends on a new connection (no error surfaces).
    CHECK(d.claim(make_ids(prefix + "warm", 10), me, 5000ms)[0] == claim_status::claimed);
    CHECK(d.confirm(prefix + "warm0", me) == confirm_status::confirmed);
    srv.restart();
    CHECK(d.claim(make_ids(prefix + "after-restart", 10), me, 5000ms)[0] == claim_status::claimed);
    // The server lost its script cache: NOSCRIPT, reloaded, confirmed.
    CHECK(d.confirm(prefix + "after-restart0", me) == confirm_status::confirmed);

    std::atomic<bool> stop{false};
    std::atomic<size_t> ok_batches{0}, failed_batches{0}, ok_after_failure{0};
    std::string first_error;
    std::thread loop([&] {
      size_t round = 0;
      while (!stop) {
        try {
          auto ids = make_ids(prefix + "r" + std::to_string(round++) + "-", 2000);
          auto s = d.claim(ids, me, 5000ms);
          d.confirm_all(ids, me);
          ++ok_batches;
          if (failed_batches > 0) ++ok_after_failure;
        } catch (const redis_unavailable& e) {
          if (failed_batches++ == 0) first_error = e.what();
          std::this_thread::sleep_for(10ms);
        }
      }
    });
    while (ok_batches < 3) std::this_thread::sleep_for(5ms);
    srv.kill();
    const auto deadline = steady_clock::now() + 10s;
    while (failed_batches == 0 && steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    CHECK(failed_batches > 0);
    std::this_thread::sleep_for(300ms);
    srv.restart();
    while (ok_after_failure < 3 && steady_clock::now() < deadline + 10s)
      std::this_thread::sleep_for(10ms);
    stop = true;
    loop.join();
    CHECK(ok_after_failure >= 3);
    std::cout << "[redis] outage: first error: " << first_error << "; " << failed_batches
              << " failed batches, then " << ok_after_failure << " good ones\n";
    // The server came back empty (no persistence): claims start afresh.
    CHECK(d.claim({prefix + "warm0"}, me, 5000ms)[0] == claim_status::claimed);
  }

  TEST_CASE("outage: a hung server costs one command timeout, then calls fail fast") {
    private_server srv("hung");
    auto o = options_for("redis://localhost:" + std::to_string(srv.port));
    o.command_timeout = 300ms;
    o.reconnect_initial_delay = 1000ms;
    o.reconnect_max_delay = 1000ms;
    redis_pool pool{o, 1};
    redis_dedup d{pool, 60000ms};
    const std::string me = make_owner_token("hung");
    const std::string prefix = unique_prefix("hung");
    CHECK(d.claim({prefix + "1"}, me, 5000ms)[0] == claim_status::claimed);

    const pid_t pid = static_cast<pid_t>(std::stol(env_value(srv.dir + "/redis.pid", "")));
    REQUIRE(pid > 0);
    struct resume {
      pid_t pid;
      ~resume() { ::kill(pid, SIGCONT); }
    } guard{pid};
    REQUIRE(::kill(pid, SIGSTOP) == 0);
    auto t0 = steady_clock::now();
    std::string msg = message_of([&] { d.claim({prefix + "2"}, me, 5000ms); });
    CHECK(msg.find("timed out") != std::string::npos);
    CHECK(steady_clock::now() - t0 < 1000ms);
    t0 = steady_clock::now();
    msg = message_of([&] { d.claim({prefix + "3"}, me, 5000ms); });
    CHECK(msg.find("next connection attempt") != std::string::npos);
    CHECK(steady_clock::now() - t0 < 100ms);
    REQUIRE(::kill(pid, SIGCONT) == 0);
    std::this_thread::sleep_for(1100ms);
    CHECK(d.claim({prefix + "4"}, me, 5000ms)[0] == claim_status::claimed);
  }
}
