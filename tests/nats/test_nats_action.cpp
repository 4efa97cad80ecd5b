// The `nats` action executor against real nats-servers (scripts/nats.sh):
// a rendered subject and payload stored with Nats-Msg-Id = the idempotency
// key, a second attempt with the same key stored once (duplicate: success),
// a subject no stream captures (retryable), an unexpected stream (final),
// and a server that is down (retryable after the ack timeout, no hang; the
// same key succeeds once the server is back).

#include "runtime/config/loader.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/exec/executor.hpp"
#include "runtime/io/nats/connection.hpp"
#include "runtime/io/nats/consumer.hpp"
#include "runtime/io/nats/jetstream.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace fraiseql;
using namespace std::chrono_literals;
using std::chrono::steady_clock;

namespace {

int sh(const std::string& cmd) {
  return std::system((cmd + " </dev/null >/dev/null").c_str());
}

std::string env_value(const std::string& file, const std::string& name) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + "=", 0) == 0) return line.substr(name.size() + 1);
  return {};
}

/// One nats-server of our own in NATS_SCRATCH_DIR/<name>-<pid>.
struct private_nats {
  std::string dir;
  explicit private_nats(const std::string& name)
      : dir(std::string(NATS_SCRATCH_DIR) + "/" + name + "-" + std::to_string(getpid())) {
    REQUIRE(sh(std::string(NATS_SH) + " start " + dir) == 0);
  }
  ~private_nats() { sh(std::string(NATS_SH) + " stop " + dir); }
  std::string url() const { return env_value(dir + "/env", "NATS_URL"); }
  void kill() { REQUIRE(sh(std::string(NATS_SH) + " kill " + dir) == 0); }
  void restart() { REQUIRE(sh(std::string(NATS_SH) + " restart " + dir) == 0); }
};

/// The fixture's server; when the binary runs alone, one of our own.
std::string fixture_url() {
  static const std::string url = [] {
    auto u = env_value(std::string(NATS_FIXTURE_DIR) + "/env", "NATS_URL");
    if (!u.empty()) return u;
    static private_nats own("action-standalone");
    return own.url();
  }();
  return url;
}

std::string unique_name(const char* what) {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::string(what) + "_" + std::to_string(getpid()) + "_" +
         std::to_string(rng() % 1000000000);
}

std::shared_ptr<nats_connection> connect_to(const std::string& url) {
  nats_connection_options o;
  o.urls = {url};
  o.connect_timeout = 1000ms;
  return nats_connection::connect(o);
}

/// A stream `name` over `name`.> (deleted at scope exit).
struct scoped_stream {
  std::shared_ptr<nats_connection> conn;
  std::string name;
  scoped_stream(std::shared_ptr<nats_connection> c, std::string n)
      : conn(std::move(c)), name(std::move(n)) {
    stream_config sc;
    sc.name = name;
    sc.subjects = {name + ".>"};
    sc.storage = stream_storage::memory;
    ensure_stream(*conn, sc);
  }
  ~scoped_stream() {
    try {
      delete_stream(*conn, name);
    } catch (...) {
    }
  }
  uint64_t messages() const { return get_stream_info(*conn, name)->messages; }
};

std::optional<std::string> no_env(const char*) {
  return std::nullopt;
}

/// A registry of one observer whose actions are `actions` (TOML).
std::shared_ptr<const observer_registry> registry_of(const std::string& actions) {
  const std::string text =
      "[database]\nurl = \"postgresql://localhost/app\"\n"
      "[[observers]]\nname = \"o\"\nevent_type = \"*\"\nentity = \"*\"\n" +
      actions;
  auto r = load_config_string(text, "t.toml", no_env);
  std::string errs;
  for (const auto& e : r.errors) errs += e.to_string() + "\n";
  INFO(errs);
  REQUIRE(r);
  std::vector<std::string> errors;
  auto reg = observer_registry::build(r.value->observers, errors);
  REQUIRE(errors.empty());
  return reg;
}

event_ptr order_event(const std::string& id = "e-1") {
  return make_event(1, position{1, 1}, id, "INSERT", "Order", "17",
                    R"({"id": 17, "customer": "Zoë", "note": "two words"})", "",
                    "2026-01-01T00:00:00Z", std::nullopt, std::nullopt, std::nullopt);
}

/// One attempt, waited for (bounded: a hang fails the test).
struct attempt_run {
  attempt_outcome outcome;
  std::chrono::milliseconds start_took{0};
  std::chrono::milliseconds took{0};
};

attempt_run run(action_executor& ex, const observer_registry& reg, const event& ev, uint32_t action,
                const std::string& key) {
  attempt_request req;
  req.ev = &ev;
  req.observer = 0;
  req.action = action;
  req.observer_cfg = &reg.config(0);
  req.action_cfg = &reg.config(0).actions.at(action);
  req.idempotency_key = key;
  struct waiter {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<attempt_outcome> got;
    int calls = 0;
  };
  auto w = std::make_shared<waiter>();
  const auto t0 = steady_clock::now();
  auto sync = ex.start(req, [w](attempt_outcome o) {
    std::lock_guard<std::mutex> l(w->mu);
    ++w->calls;
    w->got = std::move(o);
    w->cv.notify_all();
  });
  attempt_run r;
  r.start_took = std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - t0);
  if (sync) {
    r.outcome = *sync;
  } else {
    std::unique_lock<std::mutex> l(w->mu);
    REQUIRE(w->cv.wait_for(l, 20s, [&] { return w->got.has_value(); }));
    r.outcome = *w->got;
  }
  r.took = std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - t0);
  std::this_thread::sleep_for(50ms);
  std::lock_guard<std::mutex> l(w->mu);
  CHECK(w->calls == (sync ? 0 : 1));  // `done` exactly once, only when asynchronous
  return r;
}

}  // namespace

TEST_SUITE("nats action") {
  TEST_CASE(
      "publishes the rendered subject and payload with Nats-Msg-Id and stores a repeat once") {
    auto conn = connect_to(fixture_url());
    const std::string s = unique_name("orders");
    scoped_stream stream(conn, s);
    auto reg = registry_of("[[observers.actions]]\ntype = \"nats\"\nurl = \"" + fixture_url() +
                           "\"\nsubject = \"" + s +
                           ".{{ entity_id }}\"\n"
                           "[[observers.actions]]\ntype = \"nats\"\nurl = \"" +
                           fixture_url() + "\"\nsubject = \"" + s +
                           ".literal\"\nbody_template = '{\"order\": {{ data.id }}, \"who\": \"{{ "
                           "data.customer }}\"}'\n"
                           "stream = \"" +
                           s + "\"\n");
    auto ex = make_nats_executor(reg);
    auto ev = order_event();
    attempt_request req;
    req.action_cfg = &reg->config(0).actions[0];
    CHECK(ex->endpoint(req) == fixture_url());

    auto r1 = run(*ex, *reg, *ev, 0, "e-1:o:0");
    INFO(r1.outcome.error);
    CHECK(r1.outcome.ok);
    auto r2 = run(*ex, *reg, *ev, 1, "e-1:o:1");
    INFO(r2.outcome.error);
    CHECK(r2.outcome.ok);
    CHECK(stream.messages() == 2);

    // Retried attempts (same key): success, still stored once.
    for (int i = 0; i < 2; ++i) {
      auto again = run(*ex, *reg, *ev, 0, "e-1:o:0");
      INFO(again.outcome.error);
      CHECK(again.outcome.ok);
    }
    CHECK(stream.messages() == 2);

    consumer_config cc;
    cc.stream = s;
    cc.durable = "check";
    pull_consumer c(conn, cc);
    auto msgs = c.fetch(10, 2s);
    REQUIRE(msgs.size() == 2);
    CHECK(msgs[0].subject() == s + ".17");
    CHECK(msgs[0].msg_id() == "e-1:o:0");
    CHECK(msgs[0].data() == ev->envelope_json);
    CHECK(msgs[1].subject() == s + ".literal");
    CHECK(msgs[1].msg_id() == "e-1:o:1");
    CHECK(msgs[1].data() == R"({"order": 17, "who": "Zoë"})");
    for (auto& m : msgs) m.ack();
  }

  TEST_CASE("no stream for the subject is retryable and an unexpected stream is final") {
    auto conn = connect_to(fixture_url());
    const std::string s = unique_name("orders");
    scoped_stream stream(conn, s);
    auto reg = registry_of("[[observers.actions]]\ntype = \"nats\"\nurl = \"" + fixture_url() +
                           "\"\nsubject = \"" + unique_name("nostream") +
                           ".x\"\n"
                           "[[observers.actions]]\ntype = \"nats\"\nurl = \"" +
                           fixture_url() + "\"\nsubject = \"" + s + ".x\"\nstream = \"not_" + s +
                           "\"\n"
                           "[[observers.actions]]\ntype = \"nats\"\nurl = \"" +
                           fixture_url() + "\"\nsubject = \"" + s + ".{{ data.note }}\"\n");
    auto ex = make_nats_executor(reg);
    auto ev = order_event();

    auto none = run(*ex, *reg, *ev, 0, "e-1:o:0");
    INFO(none.outcome.error);
    CHECK_FALSE(none.outcome.ok);
    CHECK(none.outcome.retryable);
    CHECK(none.outcome.error.find("no stream captures subject") != std::string::npos);
    CHECK(none.took < 4s);  // no responders come at once, not after the ack timeout

    auto wrong = run(*ex, *reg, *ev, 1, "e-1:o:1");
    INFO(wrong.outcome.error);
    CHECK_FALSE(wrong.outcome.ok);
    CHECK_FALSE(wrong.outcome.retryable);
    CHECK(wrong.outcome.error.find("NATS publish refused") != std::string::npos);
    CHECK(stream.messages() == 0);

    // A rendered subject with a space: final, nothing sent.
    auto bad = run(*ex, *reg, *ev, 2, "e-1:o:2");
    INFO(bad.outcome.error);
    CHECK_FALSE(bad.outcome.ok);
    CHECK_FALSE(bad.outcome.retryable);
    CHECK(bad.outcome.error.find("subject template rendered") != std::string::npos);
  }

  TEST_CASE("a server that is down gives a retryable outcome without a hang and later one copy") {
    private_nats srv("action-outage");
    const std::string url = srv.url();
    const std::string s = unique_name("orders");
    {
      auto conn = connect_to(url);
      stream_config sc;
      sc.name = s;
      sc.subjects = {s + ".>"};
      ensure_stream(*conn, sc);  // file storage: survives the restart
    }
    auto reg = registry_of("[[observers.actions]]\ntype = \"nats\"\nurl = \"" + url +
                           "\"\nsubject = \"" + s + ".{{ entity_id }}\"\ntimeout_ms = 1000\n");
    srv.kill();

    // First use while the server is down: the connection keeps trying in the
    // background, start() returns at once and the attempt times out.
    auto ex = make_nats_executor(reg);
    auto ev = order_event();
    auto down = run(*ex, *reg, *ev, 0, "e-1:o:0");
    INFO(down.outcome.error);
    CHECK_FALSE(down.outcome.ok);
    CHECK(down.outcome.retryable);
    CHECK(down.start_took < 1500ms);
    CHECK(down.took < 5s);

    srv.restart();
    // Reconnected within a few reconnect waits; the same key, stored once.
    attempt_run up;
    for (int i = 0; i < 40; ++i) {
      up = run(*ex, *reg, *ev, 0, "e-1:o:0");
      if (up.outcome.ok) break;
      std::this_thread::sleep_for(250ms);
    }
    INFO(up.outcome.error);
    CHECK(up.outcome.ok);

    // Down again after a successful publish: retryable, bounded.
    srv.kill();
    auto again = run(*ex, *reg, *ev, 0, "e-2:o:0");
    INFO(again.outcome.error);
    CHECK_FALSE(again.outcome.ok);
    CHECK(again.outcome.retryable);
    CHECK(again.took < 5s);

    srv.restart();
    attempt_run back;
    for (int i = 0; i < 40; ++i) {
      back = run(*ex, *reg, *ev, 0, "e-1:o:0");  // a retry of the first event
      if (back.outcome.ok) break;
      std::this_thread::sleep_for(250ms);
    }
    CHECK(back.outcome.ok);
    auto conn = connect_to(url);
    auto info = get_stream_info(*conn, s);
    REQUIRE(info);
    // e-1 once; e-2's attempt may or may not have reached the stream before the kill.
    CHECK(info->messages >= 1);
    CHECK(info->messages <= 2);
    ex.reset();  // publishers and connections close before the server goes
  }
}
