// The NATS layer against real nats-servers with JetStream (scripts/nats.sh):
// connection and its state callbacks, stream and consumer management, the
// asynchronous publisher (acks, duplicates, the bounded window, oversize
// payloads, a server restart, a 3-server cluster losing a server), and the
// durable pull consumer (ack, nak, in-progress, term, max-deliver, re-bind).

#include "runtime/io/nats/connection.hpp"
#include "runtime/io/nats/consumer.hpp"
#include "runtime/io/nats/jetstream.hpp"
#include "runtime/io/nats/publisher.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
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

/// NAME=value from a file.
std::string env_value(const std::string& file, const std::string& name) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + "=", 0) == 0) return line.substr(name.size() + 1);
  }
  return {};
}

std::vector<std::string> split_urls(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = list.find(',', start);
    const size_t end = comma == std::string::npos ? list.size() : comma;
    if (end > start) out.push_back(list.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

/// nats-server(s) of our own (scripts/nats.sh) in NATS_SCRATCH_DIR/<name>:
/// one server, or a 3-server JetStream cluster.
struct private_nats {
  std::string dir;

  /// `env`: assignments put before the script (e.g. "NATS_USER=u ").
  explicit private_nats(const std::string& name, bool cluster = false, const std::string& env = "")
      : dir(std::string(NATS_SCRATCH_DIR) + "/" + name + "-" + std::to_string(getpid())) {
    REQUIRE(sh(env + NATS_SH + (cluster ? " start-cluster " : " start ") + dir) == 0);
  }
  ~private_nats() {
    if (std::getenv("NATS_TEST_KEEP") == nullptr) sh(std::string(NATS_SH) + " stop " + dir);
  }
  std::vector<std::string> urls() const { return split_urls(env_value(dir + "/env", "NATS_URLS")); }
  std::string pid(int n) const {
    return env_value(dir + "/env", "NATS_" + std::to_string(n) + "_PID");
  }
  void kill(int n) {
    REQUIRE(sh(std::string(NATS_SH) + " kill " + dir + " " + std::to_string(n)) == 0);
  }
  void restart(int n) {
    REQUIRE(sh(std::string(NATS_SH) + " restart " + dir + " " + std::to_string(n)) == 0);
  }
};

/// The fixture's server (CTest starts it); when the binary runs alone, one of
/// our own for the whole run.
std::vector<std::string> fixture_urls() {
  static const std::vector<std::string> urls = [] {
    const std::string env = std::string(NATS_FIXTURE_DIR) + "/env";
    auto u = split_urls(env_value(env, "NATS_URLS"));
    if (!u.empty()) return u;
    static private_nats own("standalone");
    return own.urls();
  }();
  return urls;
}

nats_connection_options options_for(std::vector<std::string> urls) {
  nats_connection_options o;
  o.urls = std::move(urls);
  o.connect_timeout = 1000ms;
  o.reconnect_wait = 100ms;
  o.ping_interval = 500ms;
  o.max_pings_out = 2;
  o.api_timeout = 5000ms;
  return o;
}

std::shared_ptr<nats_connection> connect_fixture() {
  return nats_connection::connect(options_for(fixture_urls()));
}

/// Names no other test (or earlier run) uses: letters, digits, '_'.
std::string unique_name(const char* what) {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::string(what) + "_" + std::to_string(getpid()) + "_" +
         std::to_string(rng() % 1000000000);
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

/// A stream `name` capturing `name`.> (deleted at scope exit).
struct scoped_stream {
  std::shared_ptr<nats_connection> conn;
  stream_config cfg;
  scoped_stream(std::shared_ptr<nats_connection> c, const std::string& name, int replicas = 1)
      : conn(std::move(c)) {
    cfg.name = name;
    cfg.subjects = {name + ".>"};
    cfg.replicas = replicas;
    ensure_stream(*conn, cfg);
  }
  ~scoped_stream() {
    try {
      delete_stream(*conn, cfg.name);
    } catch (...) {
    }
  }
  std::string subject(const std::string& tail) const { return cfg.name + "." + tail; }
};

/// Collects completions; waits for counts.
struct completions {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<publish_result> all;

  async_publisher::completion callback() {
    return [this](const publish_result& r) {
      std::lock_guard<std::mutex> lock(mu);
      all.push_back(r);
      cv.notify_all();
    };
  }
  bool wait_for(size_t n, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return all.size() >= n; });
  }
  std::vector<publish_result> snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return all;
  }
};

/// Publishes, retrying `full` (the window frees up as acks arrive).
void publish_retrying(async_publisher& pub, const std::string& subject, const std::string& payload,
                      const std::string& msg_id, uint64_t token) {
  const auto deadline = steady_clock::now() + 30s;
  for (;;) {
    auto r = pub.publish(subject, payload, msg_id, token);
    if (r.accepted()) return;
    REQUIRE_MESSAGE(r.status != async_publisher::submit::too_large, r.error);
    REQUIRE_MESSAGE(steady_clock::now() < deadline, "publish kept failing: ", r.error);
    std::this_thread::sleep_for(5ms);
  }
}

/// Fetches until `n` messages arrived or the timeout passed.
std::vector<jetstream_message> fetch_n(pull_consumer& c, size_t n, milliseconds timeout) {
  std::vector<jetstream_message> out;
  const auto deadline = steady_clock::now() + timeout;
  while (out.size() < n && steady_clock::now() < deadline) {
    auto got = c.fetch(static_cast<int>(n - out.size()), 200ms);
    for (auto& m : got) out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

TEST_CASE(
    "connection: connects to the first live URL of a list - only dead URLs throw "
    "nats_unavailable naming them") {
  // A port nothing listens on: bind, note, close.
  const std::string dead = "nats://127.0.0.1:1";
  auto urls = fixture_urls();
  urls.insert(urls.begin(), dead);
  auto conn = nats_connection::connect(options_for(urls));
  CHECK(conn->connected());
  CHECK(conn->connected_url() == fixture_urls().front());
  CHECK(conn->max_payload() == 1024 * 1024);
  conn->flush(2000ms);

  bool unavailable = false;
  std::string text;
  try {
    nats_connection::connect(options_for({dead}));
  } catch (const nats_unavailable& e) {
    unavailable = true;
    text = e.what();
  }
  CHECK(unavailable);
  CHECK(text.find(dead) != std::string::npos);

  CHECK(message_of([] { nats_connection::connect(options_for({})); }).find("no server URL") !=
        std::string::npos);
  auto o = options_for(fixture_urls());
  o.user = "u";
  CHECK(message_of([&] { nats_connection::connect(o); }).find("user and password") !=
        std::string::npos);

  // Destroying a connection reports closed (and nothing after it).
  std::mutex mu;
  std::vector<nats_event> seen;
  {
    auto c = nats_connection::connect(options_for(fixture_urls()),
                                      [&](nats_event e, const std::string&) {
                                        std::lock_guard<std::mutex> lock(mu);
                                        seen.push_back(e);
                                      });
    CHECK(c->connected());
  }
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back() == nats_event::closed);
}

TEST_CASE(
    "connection: a server requiring a user and password accepts the right ones and refuses "
    "none or a wrong password with an error naming the URL and the refusal") {
  private_nats server("auth", false, "NATS_USER=observer NATS_PASSWORD=s3cret ");
  CHECK(env_value(server.dir + "/env", "NATS_USER") == "observer");
  auto o = options_for(server.urls());
  o.user = "observer";
  o.password = "s3cret";
  auto conn = nats_connection::connect(o);
  CHECK(conn->connected());
  stream_config sc;
  sc.name = unique_name("auth");
  sc.subjects = {sc.name + ".>"};
  CHECK(ensure_stream(*conn, sc) == ensure_result::created);

  o.password = "wrong";
  std::string text;
  bool refused = false;
  try {
    nats_connection::connect(o);
  } catch (const nats_error& e) {
    refused = true;
    text = e.what();
  }
  CHECK(refused);
  MESSAGE(text);
  CHECK(text.find(server.urls().front()) != std::string::npos);
  CHECK(text.find("uthoriz") != std::string::npos);
  o.user.clear();
  o.password.clear();
  CHECK_THROWS_AS(nats_connection::connect(o), nats_error);
}

TEST_CASE(
    "stream: ensure_stream creates then is unchanged then updates what differs - info "
    "reports subjects and messages and the server's max_payload") {
  auto conn = connect_fixture();
  stream_config cfg;
  cfg.name = unique_name("ensure");
  cfg.subjects = {cfg.name + ".a.>", cfg.name + ".b.*"};
  cfg.duplicate_window = 60s;
  stream_info info;
  CHECK(ensure_stream(*conn, cfg, &info) == ensure_result::created);
  CHECK(info.config.subjects.size() == 2);
  CHECK(info.server_max_payload == 1024 * 1024);
  CHECK(ensure_stream(*conn, cfg) == ensure_result::unchanged);
  // Subject order does not matter.
  std::swap(cfg.subjects[0], cfg.subjects[1]);
  CHECK(ensure_stream(*conn, cfg) == ensure_result::unchanged);

  cfg.duplicate_window = 30s;
  cfg.max_msg_size = 4096;
  cfg.subjects.push_back(cfg.name + ".c");
  CHECK(ensure_stream(*conn, cfg, &info) == ensure_result::updated);
  CHECK(info.config.duplicate_window == 30s);
  CHECK(info.config.max_msg_size == 4096);
  CHECK(info.config.subjects.size() == 3);
  auto again = get_stream_info(*conn, cfg.name);
  REQUIRE(again);
  CHECK(again->messages == 0);
  CHECK(again->config.duplicate_window == 30s);

  // What the server cannot change is refused, naming the field.
  auto other = cfg;
  other.storage = stream_storage::memory;
  CHECK(message_of([&] { ensure_stream(*conn, other); }).find("storage") != std::string::npos);
  other = cfg;
  other.name = "bad.name";
  CHECK(message_of([&] { ensure_stream(*conn, other); }).find("cannot contain '.'") !=
        std::string::npos);

  CHECK(delete_stream(*conn, cfg.name));
  CHECK_FALSE(delete_stream(*conn, cfg.name));
  CHECK_FALSE(get_stream_info(*conn, cfg.name));
}

TEST_CASE(
    "publisher: the same Msg-Id published twice is stored once and the second completion "
    "reports duplicate") {
  auto conn = connect_fixture();
  scoped_stream stream(conn, unique_name("dup"));
  completions done;
  async_publisher pub(conn, {}, done.callback());
  REQUIRE(pub.publish(stream.subject("x"), "first", "db1:42", 1).accepted());
  REQUIRE(done.wait_for(1, 10s));
  REQUIRE(pub.publish(stream.subject("x"), "second", "db1:42", 2).accepted());
  REQUIRE(done.wait_for(2, 10s));
  auto all = done.snapshot();
  CHECK(all[0].token == 1);
  CHECK(all[0].outcome == publish_result::status::ok);
  CHECK(all[1].token == 2);
  CHECK(all[1].outcome == publish_result::status::duplicate);
  CHECK(all[1].stored());
  CHECK(all[1].stream_seq == all[0].stream_seq);
  CHECK(get_stream_info(*conn, stream.cfg.name)->messages == 1);
}

TEST_CASE(
    "publisher: every one of N async publishes completes once with ok in its own stream "
    "sequence") {
  auto conn = connect_fixture();
  scoped_stream stream(conn, unique_name("many"));
  completions done;
  publisher_options po;
  po.max_pending = 256;
  po.expect_stream = stream.cfg.name;
  async_publisher pub(conn, po, done.callback());
  const size_t n = 2000;
  const std::string payload(100, 'p');
  for (size_t i = 0; i < n; ++i) {
    publish_retrying(pub, stream.subject("e"), payload, "id-" + std::to_string(i), i);
  }
  CHECK(pub.wait_all(20s));
  CHECK(pub.pending() == 0);
  auto all = done.snapshot();
  REQUIRE(all.size() == n);
  std::set<uint64_t> tokens, seqs;
  for (const auto& r : all) {
    CHECK_MESSAGE(r.outcome == publish_result::status::ok, r.error);
    tokens.insert(r.token);
    seqs.insert(r.stream_seq);
  }
  CHECK(tokens.size() == n);
  CHECK(seqs.size() == n);
  CHECK(get_stream_info(*conn, stream.cfg.name)->messages == n);
}

TEST_CASE(
    "publisher: with max_pending publishes unacknowledged publish returns full at once and "
    "wait_room waits - the window reopens as acks complete") {
  auto conn = connect_fixture();
  scoped_stream stream(conn, unique_name("full"));
  // The first completion blocks nats.c's reply thread until released, so no
  // later ack can complete meanwhile: the window stays taken.
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> completed{0};
  publisher_options po;
  po.max_pending = 4;
  async_publisher pub(conn, po, [&](const publish_result& r) {
    CHECK(r.outcome == publish_result::status::ok);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
    ++completed;
  });
  for (uint64_t i = 0; i < 4; ++i) {
    REQUIRE(pub.publish(stream.subject("x"), "p", "m" + std::to_string(i), i).accepted());
  }
  const auto t0 = steady_clock::now();
  auto r = pub.publish(stream.subject("x"), "p", "m4", 4);
  CHECK(r.status == async_publisher::submit::full);
  CHECK(steady_clock::now() - t0 < 1s);  // returns, does not block until acks arrive
  CHECK(pub.pending() == 4);
  CHECK_FALSE(pub.wait_room(100ms));
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  CHECK(pub.wait_room(10s));
  CHECK(pub.wait_all(10s));
  CHECK(completed == 4);
  CHECK(pub.publish(stream.subject("x"), "p", "m4", 4).accepted());
  CHECK(pub.wait_all(10s));
}

TEST_CASE(
    "publisher: a message above the server's max_payload is refused up front with its size "
    "and the limit - the publisher goes on") {
  auto conn = connect_fixture();
  scoped_stream stream(conn, unique_name("big"));
  completions done;
  async_publisher pub(conn, {}, done.callback());
  const std::string msg_id = "db:1";
  // Exactly at the limit (payload + headers) passes, one byte more does not.
  const size_t fits = static_cast<size_t>(conn->max_payload()) - pub.header_overhead(msg_id);
  auto r = pub.publish(stream.subject("x"), std::string(fits + 1, 'x'), msg_id, 1);
  CHECK(r.status == async_publisher::submit::too_large);
  CHECK(r.error.find(std::to_string(fits + 1) + " bytes of payload") != std::string::npos);
  CHECK(r.error.find("max_payload of 1048576 bytes") != std::string::npos);
  CHECK(r.error.find(msg_id) != std::string::npos);
  CHECK(pub.pending() == 0);
  REQUIRE(pub.publish(stream.subject("x"), std::string(fits, 'x'), msg_id, 2).accepted());
  REQUIRE(done.wait_for(1, 10s));
  CHECK_MESSAGE(done.snapshot()[0].outcome == publish_result::status::ok, done.snapshot()[0].error);
  CHECK(done.snapshot()[0].token == 2);
}

TEST_CASE(
    "publisher: a publish to a subject no stream captures completes with an error naming "
    "the subject") {
  auto conn = connect_fixture();
  completions done;
  async_publisher pub(conn, {}, done.callback());
  const std::string subject = unique_name("nostream") + ".x";
  REQUIRE(pub.publish(subject, "p", "m1", 7).accepted());
  REQUIRE(done.wait_for(1, 10s));
  auto r = done.snapshot()[0];
  CHECK(r.outcome == publish_result::status::error);
  CHECK(r.token == 7);
  CHECK(r.error.find(subject) != std::string::npos);
}

TEST_CASE(
    "publisher: across a server kill and restart every publish completes exactly once - the "
    "connection reports disconnected and reconnected - republishing the errors with the "
    "same Msg-Id stores every message once") {
  private_nats server("restart");
  std::mutex ev_mu;
  std::vector<nats_event> events;
  std::atomic<uint64_t> accepted{0};  // publishes accepted so far
  uint64_t at_disconnect = 0, at_reconnect = 0;
  auto opts = options_for(server.urls());
  auto conn = nats_connection::connect(opts, [&](nats_event e, const std::string&) {
    std::lock_guard<std::mutex> lock(ev_mu);
    events.push_back(e);
    if (e == nats_event::disconnected && at_disconnect == 0) at_disconnect = accepted;
    if (e == nats_event::reconnected && at_reconnect == 0) at_reconnect = accepted;
  });
  scoped_stream stream(conn, unique_name("restart"));
  completions done;
  publisher_options po;
  po.max_pending = 64;
  po.ack_timeout = 2000ms;
  async_publisher pub(conn, po, done.callback());

  const uint64_t n = 600;
  const std::string payload(200, 'r');
  auto id = [](uint64_t i) { return "ev-" + std::to_string(i); };
  int kill_rc = -1, restart_rc = -1;
  std::thread outage([&] {
    std::this_thread::sleep_for(150ms);
    kill_rc = sh(std::string(NATS_SH) + " kill " + server.dir);
    std::this_thread::sleep_for(300ms);
    restart_rc = sh(std::string(NATS_SH) + " restart " + server.dir);
  });
  for (uint64_t i = 0; i < n; ++i) {
    publish_retrying(pub, stream.subject("e"), payload, id(i), i);
    accepted = i + 1;
    if (i % 20 == 0) std::this_thread::sleep_for(10ms);  // spread over the outage
  }
  outage.join();
  REQUIRE(kill_rc == 0);
  REQUIRE(restart_rc == 0);
  {
    // The outage fell inside the publishing, not before or after it.
    std::lock_guard<std::mutex> lock(ev_mu);
    CHECK(at_disconnect > 0);
    CHECK(at_disconnect < n);
    MESSAGE("disconnected after " << at_disconnect << " publishes, reconnected after "
                                  << at_reconnect);
  }
  CHECK(pub.wait_all(30s));

  // Exactly one completion per token; republish what failed until stored.
  std::map<uint64_t, int> count;
  std::set<uint64_t> stored;
  size_t errors = 0;
  for (const auto& r : done.snapshot()) {
    ++count[r.token];
    if (r.stored()) {
      stored.insert(r.token);
    } else {
      ++errors;
    }
  }
  CHECK(count.size() == n);
  for (const auto& [token, c] : count) CHECK_MESSAGE(c == 1, "token ", token);
  MESSAGE(errors << " of " << n << " publishes failed (no ack in time) across the outage");
  for (int round = 0; round < 5 && stored.size() < n; ++round) {
    const size_t before = done.snapshot().size();
    size_t resent = 0;
    for (uint64_t i = 0; i < n; ++i) {
      if (stored.count(i) == 0) {
        publish_retrying(pub, stream.subject("e"), payload, id(i), i);
        ++resent;
      }
    }
    CHECK(pub.wait_all(30s));
    auto all = done.snapshot();
    CHECK(all.size() == before + resent);
    for (size_t k = before; k < all.size(); ++k) {
      if (all[k].stored()) stored.insert(all[k].token);
    }
  }
  CHECK(stored.size() == n);
  auto info = get_stream_info(*conn, stream.cfg.name);
  REQUIRE(info);
  CHECK(info->messages == n);  // the duplicate window kept republished ones single
  std::lock_guard<std::mutex> lock(ev_mu);
  CHECK(std::find(events.begin(), events.end(), nats_event::disconnected) != events.end());
  CHECK(std::find(events.begin(), events.end(), nats_event::reconnected) != events.end());
  CHECK(conn->reconnects() >= 1);
}

TEST_CASE(
    "cluster: with an R3 stream on three servers killing the stream's leader leaves "
    "publishing going - every message is stored once") {
  private_nats cluster("cluster", true);
  auto conn = nats_connection::connect(options_for(cluster.urls()));
  scoped_stream stream(conn, unique_name("r3"), 3);
  auto info = get_stream_info(*conn, stream.cfg.name);
  REQUIRE(info);
  CHECK(info->config.replicas == 3);
  CHECK(info->replica_names.size() == 2);
  REQUIRE(info->leader.size() == 2);  // n1..n3
  const int leader = info->leader[1] - '0';

  completions done;
  publisher_options po;
  po.ack_timeout = 2000ms;
  po.max_pending = 64;
  async_publisher pub(conn, po, done.callback());
  const uint64_t n = 400;
  auto id = [](uint64_t i) { return "c-" + std::to_string(i); };
  std::set<uint64_t> stored;
  std::map<std::string, int> failures;
  auto collect = [&](size_t from) {
    auto all = done.snapshot();
    for (size_t k = from; k < all.size(); ++k) {
      if (all[k].stored()) {
        stored.insert(all[k].token);
      } else {
        ++failures[all[k].error.substr(0, 40)];
      }
    }
    return all.size();
  };
  for (uint64_t i = 0; i < n / 2; ++i) publish_retrying(pub, stream.subject("e"), "x", id(i), i);
  CHECK(pub.wait_all(20s));
  size_t seen = collect(0);
  CHECK(stored.size() == n / 2);

  cluster.kill(leader);
  const auto killed = steady_clock::now();
  for (uint64_t i = n / 2; i < n; ++i) publish_retrying(pub, stream.subject("e"), "x", id(i), i);
  CHECK(pub.wait_all(30s));
  seen = collect(seen);
  // What failed during the stream leader's election (no responders, or no
  // ack in time) goes again with the same Msg-Id until stored.
  const auto deadline = steady_clock::now() + 60s;
  while (stored.size() < n && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(500ms);
    for (uint64_t i = 0; i < n; ++i) {
      if (stored.count(i) == 0) publish_retrying(pub, stream.subject("e"), "x", id(i), i);
    }
    CHECK(pub.wait_all(30s));
    seen = collect(seen);
  }
  CHECK(stored.size() == n);
  for (const auto& [text, count] : failures) MESSAGE(count << " failed publishes: " << text);
  MESSAGE("all stored "
          << std::chrono::duration_cast<milliseconds>(steady_clock::now() - killed).count()
          << " ms after the leader was killed");
  info = get_stream_info(*conn, stream.cfg.name);
  REQUIRE(info);
  CHECK(info->messages == n);
  CHECK(info->leader != "n" + std::to_string(leader));
}

TEST_CASE("consumer: fetch then ack / nak / nak with delay / in-progress / term do what they say") {
  auto conn = connect_fixture();
  scoped_stream stream(conn, unique_name("pull"));
  completions done;
  async_publisher pub(conn, {}, done.callback());
  for (uint64_t i = 0; i < 4; ++i) {
    REQUIRE(pub.publish(stream.subject("e." + std::to_string(i)), "payload-" + std::to_string(i),
                        "m" + std::to_string(i), i)
                .accepted());
  }
  REQUIRE(pub.wait_all(10s));

  consumer_config cc;
  cc.stream = stream.cfg.name;
  cc.durable = "workers";
  cc.filter_subject = stream.cfg.name + ".e.>";
  cc.ack_wait = 1000ms;
  pull_consumer consumer(conn, cc);
  CHECK(consumer.ensured() == ensure_result::created);
  auto msgs = fetch_n(consumer, 4, 5s);
  REQUIRE(msgs.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(msgs[i].data() == "payload-" + std::to_string(i));
    CHECK(msgs[i].subject() == stream.subject("e." + std::to_string(i)));
    CHECK(msgs[i].msg_id() == "m" + std::to_string(i));
    CHECK(msgs[i].metadata().stream_seq == i + 1);
    CHECK(msgs[i].metadata().stream == stream.cfg.name);
    CHECK(msgs[i].metadata().consumer == "workers");
    CHECK(msgs[i].num_delivered() == 1);
  }
  auto ci = consumer.info();
  CHECK(ci.num_ack_pending == 4);
  CHECK(ci.num_pending == 0);

  msgs[0].ack_sync();                          // done: never again
  msgs[1].nak();                               // again, now
  msgs[2].nak(300ms);                          // again, later
  msgs[3].term();                              // never again
  CHECK_THROWS_AS(msgs[0].ack(), nats_error);  // settled already

  auto again = fetch_n(consumer, 1, 3s);
  REQUIRE(again.size() == 1);
  CHECK(again[0].metadata().stream_seq == 2);
  CHECK(again[0].num_delivered() == 2);
  again[0].ack_sync();
  auto delayed = fetch_n(consumer, 1, 5s);
  REQUIRE(delayed.size() == 1);
  CHECK(delayed[0].metadata().stream_seq == 3);
  CHECK(delayed[0].num_delivered() == 2);

  // In progress keeps it: ack_wait is 1 s, it is held for 2 s, never redelivered.
  for (int i = 0; i < 8; ++i) {
    delayed[0].in_progress();
    std::this_thread::sleep_for(250ms);
  }
  CHECK(consumer.fetch(1, 300ms).empty());
  delayed[0].ack_sync();
  ci = consumer.info();
  CHECK(ci.num_ack_pending == 0);
  CHECK(ci.ack_floor_stream_seq == 4);  // the terminated one counts as settled
  CHECK(consumer.fetch(4, 300ms).empty());
}

TEST_CASE("consumer: after max_deliver deliveries without ack a message is not delivered again") {
  auto conn = connect_fixture();
  scoped_stream stream(conn, unique_name("maxdel"));
  completions done;
  async_publisher pub(conn, {}, done.callback());
  REQUIRE(pub.publish(stream.subject("e"), "poison", "p1", 1).accepted());
  REQUIRE(pub.publish(stream.subject("e"), "fine", "p2", 2).accepted());
  REQUIRE(pub.wait_all(10s));

  consumer_config cc;
  cc.stream = stream.cfg.name;
  cc.durable = "md";
  cc.max_deliver = 2;
  cc.ack_wait = 2000ms;
  pull_consumer consumer(conn, cc);
  std::vector<uint64_t> deliveries;
  for (int round = 0; round < 4; ++round) {
    for (auto& m : consumer.fetch(2, 500ms)) {
      if (m.data() == "fine") {
        m.ack_sync();
      } else {
        deliveries.push_back(m.num_delivered());
        m.nak();
      }
    }
  }
  CHECK(deliveries == std::vector<uint64_t>{1, 2});
  CHECK(consumer.info().num_redelivered <= 1);
}

TEST_CASE(
    "consumer: the durable outlives its pull_consumer: re-binding gets the unacked message "
    "again and not the acked one - ensure_consumer updates ack_wait and refuses another "
    "filter") {
  auto conn = connect_fixture();
  scoped_stream stream(conn, unique_name("durable"));
  completions done;
  async_publisher pub(conn, {}, done.callback());
  REQUIRE(pub.publish(stream.subject("a"), "one", "d1", 1).accepted());
  REQUIRE(pub.publish(stream.subject("a"), "two", "d2", 2).accepted());
  REQUIRE(pub.wait_all(10s));

  consumer_config cc;
  cc.stream = stream.cfg.name;
  cc.durable = "keeper";
  cc.filter_subject = stream.subject("a");
  cc.ack_wait = 500ms;
  {
    pull_consumer first(conn, cc);
    auto msgs = fetch_n(first, 2, 5s);
    REQUIRE(msgs.size() == 2);
    msgs[0].ack_sync();
    // msgs[1] is dropped unacked with the consumer object.
  }
  REQUIRE(get_consumer_info(*conn, cc.stream, cc.durable));
  pull_consumer second(conn, cc);
  CHECK(second.ensured() == ensure_result::unchanged);
  auto again = fetch_n(second, 1, 5s);
  REQUIRE(again.size() == 1);
  CHECK(again[0].data() == "two");
  CHECK(again[0].num_delivered() == 2);
  again[0].ack_sync();
  CHECK(second.fetch(2, 300ms).empty());

  cc.ack_wait = 3000ms;
  consumer_info info;
  CHECK(ensure_consumer(*conn, cc, &info) == ensure_result::updated);
  CHECK(info.config.ack_wait == 3000ms);
  cc.filter_subject = stream.subject("b");
  const auto text = message_of([&] { ensure_consumer(*conn, cc); });
  CHECK(text.find("filter subject") != std::string::npos);
  CHECK(text.find("keeper") != std::string::npos);
  CHECK(delete_consumer(*conn, cc.stream, cc.durable));
  CHECK_FALSE(get_consumer_info(*conn, cc.stream, cc.durable));
}

TEST_CASE(
    "consumer: with the server killed fetch returns within its bound (empty or nats_unavailable) "
    "and after the restart the same pull_consumer delivers the rest") {
  private_nats server("consumer-restart");
  auto conn = nats_connection::connect(options_for(server.urls()));
  scoped_stream stream(conn, unique_name("crestart"));
  {
    completions done;
    async_publisher pub(conn, {}, done.callback());
    for (uint64_t i = 0; i < 10; ++i) {
      REQUIRE(pub.publish(stream.subject("e"), std::to_string(i), "r" + std::to_string(i), i)
                  .accepted());
    }
    REQUIRE(pub.wait_all(10s));
  }
  consumer_config cc;
  cc.stream = stream.cfg.name;
  cc.durable = "survivor";
  cc.ack_wait = 1000ms;
  pull_consumer consumer(conn, cc);
  auto first = fetch_n(consumer, 5, 5s);
  REQUIRE(first.size() == 5);
  for (auto& m : first) m.ack_sync();

  server.kill(1);
  const auto t0 = steady_clock::now();
  try {
    CHECK(consumer.fetch(5, 500ms).empty());
  } catch (const nats_unavailable& e) {
    MESSAGE("fetch while down: " << e.what());
  }
  CHECK(steady_clock::now() - t0 < 5s);
  server.restart(1);

  std::vector<uint64_t> seqs;
  const auto deadline = steady_clock::now() + 30s;
  while (seqs.size() < 5 && steady_clock::now() < deadline) {
    try {
      for (auto& m : consumer.fetch(5, 500ms)) {
        seqs.push_back(m.metadata().stream_seq);
        m.ack_sync();
      }
    } catch (const nats_unavailable&) {
      std::this_thread::sleep_for(100ms);
    }
  }
  CHECK(seqs == std::vector<uint64_t>{6, 7, 8, 9, 10});
}

TEST_CASE(
    "connection: a TLS-only server is reached with the CA file and refused without TLS or with "
    "another CA") {
  private_nats server("tls", false, "NATS_TLS=1 ");
  const std::string ca = env_value(server.dir + "/env", "NATS_TLS_CA");
  REQUIRE_FALSE(ca.empty());
  auto o = options_for(server.urls());  // tls://127.0.0.1:port
  CHECK(o.urls.front().rfind("tls://", 0) == 0);
  o.tls = true;
  o.tls_ca_file = ca;
  auto conn = nats_connection::connect(o);
  CHECK(conn->connected());
  stream_config sc;
  sc.name = unique_name("tls");
  sc.subjects = {sc.name + ".>"};
  CHECK(ensure_stream(*conn, sc) == ensure_result::created);

  // Without TLS.
  auto plain = o;
  plain.tls = false;
  plain.tls_ca_file.clear();
  const std::string port = env_value(server.dir + "/env", "NATS_PORT");
  plain.urls = {"nats://127.0.0.1:" + port};
  CHECK_THROWS_AS(nats_connection::connect(plain), nats_error);
  // A CA that did not sign the server's certificate (the system's bundle).
  auto other = o;
  other.tls_ca_file.clear();
  const auto text = message_of([&] { nats_connection::connect(other); });
  MESSAGE(text);
  CHECK_FALSE(text.empty());
  // A missing CA file is named.
  other.tls_ca_file = server.dir + "/no-such-ca.pem";
  CHECK(message_of([&] { nats_connection::connect(other); }).find("TLS CA file") !=
        std::string::npos);
}

TEST_CASE(
    "connection: with retry_on_failed_connect a connection made before its server starts "
    "reports connected once the server is up") {
  // A free port: bind it and let go (the server takes it below).
  std::string port;
  {
    FILE* p = popen(
        "python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",0));"
        "print(s.getsockname()[1])'",
        "r");
    REQUIRE(p != nullptr);
    char buf[32] = {0};
    REQUIRE(fgets(buf, sizeof buf, p) != nullptr);
    pclose(p);
    port = std::string(buf, strcspn(buf, "\n"));
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<nats_event> seen;
  auto o = options_for({"nats://127.0.0.1:" + port});
  o.retry_on_failed_connect = true;
  auto conn = nats_connection::connect(o, [&](nats_event e, const std::string&) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(e);
    cv.notify_all();
  });
  CHECK_FALSE(conn->connected());
  private_nats server("late", false, "NATS_PORT=" + port + " ");
  std::unique_lock<std::mutex> lock(mu);
  CHECK(cv.wait_for(lock, 20s, [&] {
    return std::find(seen.begin(), seen.end(), nats_event::connected) != seen.end();
  }));
  lock.unlock();
  CHECK(conn->connected());
  conn->flush(2000ms);
}

TEST_CASE(
    "publisher: with the server frozen (SIGSTOP) a publish completes with a timeout error after "
    "ack_timeout and destroying the publisher fails every pending publish through its callback") {
  private_nats server("frozen");
  auto conn = nats_connection::connect(options_for(server.urls()));
  scoped_stream stream(conn, unique_name("frozen"));
  const pid_t pid = static_cast<pid_t>(std::stol(server.pid(1)));
  struct thaw {
    pid_t pid;
    ~thaw() { ::kill(pid, SIGCONT); }
  } thaw_on_exit{pid};

  completions done;
  {
    publisher_options po;
    po.ack_timeout = 300ms;
    async_publisher pub(conn, po, done.callback());
    REQUIRE(::kill(pid, SIGSTOP) == 0);
    REQUIRE(pub.publish(stream.subject("e"), "p", "t1", 1).accepted());
    REQUIRE(done.wait_for(1, 10s));
    auto r = done.snapshot()[0];
    CHECK(r.token == 1);
    CHECK(r.outcome == publish_result::status::error);
    CHECK(r.error.find("no acknowledgment within 300 ms") != std::string::npos);
  }
  {
    publisher_options po;
    po.ack_timeout = 60s;  // nothing times out: the destructor must settle them
    async_publisher pub(conn, po, done.callback());
    for (uint64_t i = 10; i < 20; ++i) {
      REQUIRE(pub.publish(stream.subject("e"), "p", "t" + std::to_string(i), i).accepted());
    }
    CHECK(pub.pending() == 10);
  }
  auto all = done.snapshot();
  REQUIRE(all.size() == 11);
  std::set<uint64_t> tokens;
  for (size_t k = 1; k < all.size(); ++k) {
    tokens.insert(all[k].token);
    CHECK(all[k].outcome == publish_result::status::error);
    CHECK(all[k].error.find("publisher closed") != std::string::npos);
  }
  CHECK(tokens.size() == 10);
  CHECK(*tokens.begin() == 10);
  CHECK(*tokens.rbegin() == 19);
}

TEST_CASE("publisher: destroyed without ever publishing - no crash (nats.c 3.4.1 pending map)") {
  auto conn = nats_connection::connect(options_for(fixture_urls()));
  int completions = 0;
  {
    async_publisher pub(conn, publisher_options{}, [&](const publish_result&) { ++completions; });
    CHECK(pub.pending() == 0);
  }
  CHECK(completions == 0);
}
