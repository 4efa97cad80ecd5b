// bench_sink: a fast HTTP/1.1 keep-alive webhook sink for the benchmarks.
//
//   bench_sink [--port P] [--port-file F] [--threads T] [--dump F] [--delay-ms D]
//              [--capacity C]
//
// Every request other than the control paths is answered 200 {"ok":true} and
// recorded in memory: receive time (CLOCK_REALTIME, µs), the Idempotency-Key
// header, and from the JSON body the first "id", "entity_id" and "timestamp"
// fields. The latency of a request is its receive time minus its "timestamp"
// (the capture time, on the same machine clock).
//
//   GET  /_stats[?expect=N]  JSON summary: requests, unique/duplicate keys and
//                            entities, lost (entities 1..N never received),
//                            latency percentiles, events/s
//   GET  /_count             {"requests": N}, cheap (for progress polling)
//   POST /_reset             forget everything recorded
// SIGTERM/SIGINT: print the summary on stdout, write --dump (one TSV line per
// request: recv_us, ts_us, entity_id, key, id), exit 0.
//
// A body that is a JSON array (a batched webhook) is recorded per element,
// each with its own "idempotency_key", "id", "entity_id" and "timestamp":
// counts and latencies are per event either way; http_requests counts the
// requests.
//
// --capacity C (with --delay-ms): a request arriving while C answers of this
// thread are still delayed is answered 503 at once and not recorded (shed, a
// struggling endpoint); /_stats counts them, and the most answers delayed at
// once (max_in_flight).
//
// --delay-ms D: every recorded request is answered D ms after it arrived (a
// slow endpoint; the receive time is still the arrival); the control paths
// answer at once. The loop keeps serving other connections meanwhile, so the
// sink holds any number of delayed requests (one per client connection: the
// benchmark clients do not pipeline).
//
// One epoll loop per thread (SO_REUSEPORT); one thread handles well over
// 50k requests/s on loopback (bench_sink_load measures it).
#include "http_sink.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>
#include <ctime>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

using namespace bench_sink;

namespace {

std::atomic<bool> g_stop{false};
int64_t g_delay_us = 0;
size_t g_capacity = 0;
std::atomic<uint64_t> g_http_requests{0};
std::atomic<uint64_t> g_shed{0};
std::atomic<uint64_t> g_max_in_flight{0};

int64_t now_us() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

constexpr int64_t none = INT64_MIN;

struct record {
  int64_t recv_us;
  int64_t ts_us;   // none when the body had no parsable "timestamp"
  int64_t entity;  // none when the body had no integer "entity_id"
  uint32_t key_off, key_len;
  uint32_t id_off, id_len;
};

/// One per loop thread; the mutex is uncontended except while /_stats reads.
struct store {
  std::mutex mu;
  std::vector<record> recs;
  std::string arena;  // keys and ids
  void clear() {
    recs.clear();
    recs.shrink_to_fit();
    arena.clear();
    arena.shrink_to_fit();
  }
};

std::vector<std::unique_ptr<store>> g_stores;

void record_event(store& s, int64_t recv_us, std::string_view body, std::string_view key) {
  record rec;
  rec.recv_us = recv_us;
  rec.ts_us = none;
  rec.entity = none;
  std::string_view id;
  if (auto t = json_field(body, "timestamp"))
    if (auto v = parse_time_us(*t)) rec.ts_us = *v;
  if (auto e = json_field(body, "entity_id"))
    if (auto v = parse_int(*e)) rec.entity = *v;
  if (auto i = json_field(body, "id")) id = *i;
  rec.key_off = static_cast<uint32_t>(s.arena.size());
  rec.key_len = static_cast<uint32_t>(key.size());
  s.arena.append(key);
  rec.id_off = static_cast<uint32_t>(s.arena.size());
  rec.id_len = static_cast<uint32_t>(id.size());
  s.arena.append(id);
  s.recs.push_back(rec);
}

void record_request(store& s, const request& r) {
  const int64_t recv = now_us();
  g_http_requests.fetch_add(1, std::memory_order_relaxed);
  const auto elements = json_array_elements(r.body);
  std::lock_guard<std::mutex> g{s.mu};
  if (elements.empty()) return record_event(s, recv, r.body, r.idempotency_key);
  for (auto el : elements)
    record_event(s, recv, el, json_field(el, "idempotency_key").value_or(std::string_view{}));
}

std::string query_param(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view qs = target.substr(q + 1);
  while (!qs.empty()) {
    auto amp = qs.find('&');
    std::string_view kv = qs.substr(0, amp);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == name)
      return std::string(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    qs.remove_prefix(amp + 1);
  }
  return {};
}

double pct(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  // Nearest rank.
  size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]) / 1000.0;
}

std::string stats_json(int64_t expect) {
  std::vector<std::unique_lock<std::mutex>> locks;
  for (auto& s : g_stores) locks.emplace_back(s->mu);
  uint64_t requests = 0, with_key = 0, no_ts = 0;
  std::unordered_set<std::string_view> keys;
  std::vector<int64_t> lat;
  int64_t first_ts = INT64_MAX, first_recv = INT64_MAX, last_recv = INT64_MIN;
  std::vector<uint32_t> seen(expect > 0 ? static_cast<size_t>(expect) + 1 : 0, 0);
  std::unordered_map<int64_t, uint32_t> seen_other;
  for (auto& s : g_stores) {
    requests += s->recs.size();
    lat.reserve(lat.size() + s->recs.size());
    for (const auto& r : s->recs) {
      if (r.key_len) {
        ++with_key;
        keys.insert(std::string_view(s->arena).substr(r.key_off, r.key_len));
      }
      if (r.ts_us != none) {
        lat.push_back(r.recv_us - r.ts_us);
        first_ts = std::min(first_ts, r.ts_us);
      } else {
        ++no_ts;
      }
      first_recv = std::min(first_recv, r.recv_us);
      last_recv = std::max(last_recv, r.recv_us);
      if (r.entity != none) {
        if (r.entity >= 1 && r.entity <= expect)
          ++seen[static_cast<size_t>(r.entity)];
        else
          ++seen_other[r.entity];
      }
    }
  }
  uint64_t unique_entities = seen_other.size(), dup_entities = 0, lost = 0;
  for (auto& kv : seen_other) dup_entities += kv.second - 1;
  for (int64_t e = 1; e <= expect; ++e) {
    auto c = seen[static_cast<size_t>(e)];
    if (c == 0)
      ++lost;
    else {
      ++unique_entities;
      dup_entities += c - 1;
    }
  }
  std::sort(lat.begin(), lat.end());
  double mean = 0;
  for (auto v : lat) mean += static_cast<double>(v);
  if (!lat.empty()) mean = mean / static_cast<double>(lat.size()) / 1000.0;
  uint64_t events = unique_entities ? unique_entities : keys.size();
  double span_s = 0, rate = 0;
  if (requests && first_ts != INT64_MAX) span_s = static_cast<double>(last_recv - first_ts) / 1e6;
  if (span_s > 0) rate = static_cast<double>(events) / span_s;
  char buf[1024];
  std::snprintf(
      buf, sizeof buf,
      "{\"requests\":%llu,\"unique_keys\":%zu,\"dup_keys\":%llu,\"unique_entities\":%llu,"
      "\"dup_entities\":%llu,\"expect\":%lld,\"lost\":%llu,\"no_timestamp\":%llu,"
      "\"first_ts_us\":%lld,\"first_recv_us\":%lld,\"last_recv_us\":%lld,\"span_s\":%.6f,"
      "\"events_per_s\":%.1f,\"lat_ms\":{\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"max\":%.3f,"
      "\"mean\":%.3f},\"http_requests\":%llu,\"shed\":%llu,\"max_in_flight\":%llu}",
      static_cast<unsigned long long>(requests), keys.size(),
      static_cast<unsigned long long>(with_key - keys.size()),
      static_cast<unsigned long long>(unique_entities),
      static_cast<unsigned long long>(dup_entities), static_cast<long long>(expect),
      static_cast<unsigned long long>(lost), static_cast<unsigned long long>(no_ts),
      static_cast<long long>(first_ts == INT64_MAX ? 0 : first_ts),
      static_cast<long long>(first_recv == INT64_MAX ? 0 : first_recv),
      static_cast<long long>(last_recv == INT64_MIN ? 0 : last_recv), span_s, rate, pct(lat, 50),
      pct(lat, 95), pct(lat, 99), lat.empty() ? 0.0 : static_cast<double>(lat.back()) / 1000.0,
      mean, static_cast<unsigned long long>(g_http_requests.load()),
      static_cast<unsigned long long>(g_shed.load()),
      static_cast<unsigned long long>(g_max_in_flight.load()));
  return buf;
}

/// Cheap progress probe: requests recorded so far.
std::string count_json() {
  size_t n = 0;
  for (auto& s : g_stores) {
    std::lock_guard<std::mutex> g{s->mu};
    n += s->recs.size();
  }
  return "{\"requests\":" + std::to_string(n) + "}";
}

void reset_all() {
  for (auto& s : g_stores) {
    std::lock_guard<std::mutex> g{s->mu};
    s->clear();
  }
  g_http_requests = 0;
  g_shed = 0;
  g_max_in_flight = 0;
}

void dump(const char* path) {
  FILE* f = std::fopen(path, "w");
  if (!f) {
    std::perror(path);
    return;
  }
  for (auto& s : g_stores) {
    std::lock_guard<std::mutex> g{s->mu};
    for (const auto& r : s->recs)
      std::fprintf(f, "%lld\t%lld\t%lld\t%.*s\t%.*s\n", static_cast<long long>(r.recv_us),
                   static_cast<long long>(r.ts_us == none ? 0 : r.ts_us),
                   static_cast<long long>(r.entity == none ? 0 : r.entity),
                   static_cast<int>(r.key_len), s->arena.data() + r.key_off,
                   static_cast<int>(r.id_len), s->arena.data() + r.id_off);
  }
  std::fclose(f);
}

struct conn {
  uint64_t gen = 0;  // tells a reused fd's connection from the one a delayed answer is for
  std::string in;
  std::string out;
  size_t out_off = 0;
  bool close_after = false;
  bool watching_out = false;  // EPOLLOUT registered
};

void append_response(conn& c, int status, std::string_view body, bool close) {
  char head[160];
  int n = std::snprintf(
      head, sizeof head,
      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n", status,
      status == 200   ? "OK"
      : status == 503 ? "Service Unavailable"
                      : "Bad Request",
      body.size(), close ? "Connection: close\r\n" : "");
  c.out.append(head, static_cast<size_t>(n));
  c.out.append(body);
}

int make_listener(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("socket");
    std::exit(1);
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(fd, 1024) < 0) {
    std::perror("bind/listen");
    std::exit(1);
  }
  return fd;
}

int bound_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

bool flush_out(int fd, conn& c) {
  while (c.out_off < c.out.size()) {
    ssize_t n = ::send(fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  c.out.clear();
  c.out_off = 0;
  return true;
}

void loop(int lfd, store& st) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::unordered_map<int, conn> conns;
  std::vector<epoll_event> events(256);
  std::vector<char> rbuf(1 << 16);
  uint64_t next_gen = 0;
  // --delay-ms: answers due later, in arrival order (one delay for all, so
  // the queue is sorted by due time).
  struct delayed {
    int64_t due_us;
    int fd;
    uint64_t gen;
    bool close;
  };
  std::deque<delayed> due;
  auto close_conn = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns.erase(fd);
  };
  // Sends what c.out holds; closes the connection when it is done or dead,
  // else watches EPOLLOUT while output remains. False when it was closed.
  auto settle = [&](int fd, conn& c, bool dead, uint32_t what) {
    if (!dead && !c.out.empty()) {
      if (!flush_out(fd, c)) dead = true;
    }
    if (dead || (c.close_after && c.out.empty()) || (what & (EPOLLHUP | EPOLLERR))) {
      close_conn(fd);
      return false;
    }
    // Only touch the registration when it changes: one syscall less per request.
    if (c.watching_out != !c.out.empty()) {
      c.watching_out = !c.out.empty();
      epoll_event mev{};
      mev.events = EPOLLIN | EPOLLRDHUP | (c.watching_out ? static_cast<uint32_t>(EPOLLOUT) : 0u);
      mev.data.fd = fd;
      epoll_ctl(ep, EPOLL_CTL_MOD, fd, &mev);
    }
    return true;
  };
  while (!g_stop.load(std::memory_order_relaxed)) {
    int timeout_ms = 200;
    if (!due.empty())
      timeout_ms = static_cast<int>(
          std::clamp<int64_t>((due.front().due_us - now_us() + 999) / 1000, 0, 200));
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeout_ms);
    for (int64_t now = now_us(); !due.empty() && due.front().due_us <= now; due.pop_front()) {
      const delayed d = due.front();
      auto it = conns.find(d.fd);
      if (it == conns.end() || it->second.gen != d.gen) continue;  // the client went away
      append_response(it->second, 200, "{\"ok\":true}", d.close);
      if (d.close) it->second.close_after = true;
      settle(d.fd, it->second, false, 0);
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[static_cast<size_t>(i)].data.fd;
      uint32_t what = events[static_cast<size_t>(i)].events;
      if (fd == lfd) {
        while (true) {
          int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          conn fresh;
          fresh.gen = ++next_gen;
          conns.emplace(c, std::move(fresh));
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      conn& c = it->second;
      bool dead = false;
      if (what & EPOLLIN) {
        while (true) {
          ssize_t r = ::recv(fd, rbuf.data(), rbuf.size(), 0);
          if (r > 0) {
            c.in.append(rbuf.data(), static_cast<size_t>(r));
            if (static_cast<size_t>(r) < rbuf.size()) break;
            continue;
          }
          if (r == 0)
            dead = true;
          else if (errno == EINTR)
            continue;
          else if (errno != EAGAIN && errno != EWOULDBLOCK)
            dead = true;
          break;
        }
        size_t off = 0;
        while (!c.close_after) {
          request req;
          auto ps = parse_request(std::string_view(c.in).substr(off), req);
          if (ps == parse_status::incomplete) break;
          if (ps == parse_status::bad) {
            append_response(c, 400, "{\"error\":\"bad request\"}", true);
            c.close_after = true;
            break;
          }
          off += req.consumed;
          std::string_view path = req.target.substr(0, req.target.find('?'));
          if (path == "/_stats") {
            std::string e = query_param(req.target, "expect");
            append_response(c, 200, stats_json(e.empty() ? 0 : std::atoll(e.c_str())), req.close);
          } else if (path == "/_count") {
            append_response(c, 200, count_json(), req.close);
          } else if (path == "/_reset") {
            reset_all();
            append_response(c, 200, "{}", req.close);
          } else if (g_capacity > 0 && g_delay_us > 0 && due.size() >= g_capacity) {
            g_shed.fetch_add(1, std::memory_order_relaxed);
            append_response(c, 503, "{\"error\":\"over capacity\"}", req.close);
          } else {
            record_request(st, req);
            if (g_delay_us > 0) {
              due.push_back({now_us() + g_delay_us, fd, c.gen, req.close});
              uint64_t seen = g_max_in_flight.load(std::memory_order_relaxed);
              while (due.size() > seen &&
                     !g_max_in_flight.compare_exchange_weak(seen, due.size())) {
              }
              continue;  // answered (and closed, if asked) when due
            }
            append_response(c, 200, "{\"ok\":true}", req.close);
          }
          if (req.close) c.close_after = true;
        }
        c.in.erase(0, off);
      }
      settle(fd, c, dead, what);
    }
  }
  for (auto& kv : conns) ::close(kv.first);
  ::close(ep);
}

void on_signal(int) {
  g_stop = true;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, threads = 1;
  const char* port_file = nullptr;
  const char* dump_file = nullptr;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port")
      port = std::atoi(next());
    else if (a == "--port-file")
      port_file = next();
    else if (a == "--threads")
      threads = std::max(1, std::atoi(next()));
    else if (a == "--dump")
      dump_file = next();
    else if (a == "--delay-ms")
      g_delay_us = static_cast<int64_t>(std::atof(next()) * 1000);
    else if (a == "--capacity")
      g_capacity = static_cast<size_t>(std::max(0, std::atoi(next())));
    else {
      std::fprintf(stderr,
                   "usage: bench_sink [--port P] [--port-file F] [--threads T] [--dump F] "
                   "[--delay-ms D] [--capacity C]\n");
      return 2;
    }
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<int> lfds;
  lfds.push_back(make_listener(port));
  port = bound_port(lfds[0]);
  for (int t = 1; t < threads; ++t) lfds.push_back(make_listener(port));
  for (int t = 0; t < threads; ++t) g_stores.push_back(std::make_unique<store>());
  for (auto& s : g_stores) s->recs.reserve(1 << 16);
  if (port_file) {
    std::string tmp = std::string(port_file) + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) {
      std::perror(port_file);
      return 1;
    }
    std::fprintf(f, "%d\n", port);
    std::fclose(f);
    std::rename(tmp.c_str(), port_file);
  }
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back(
        [&, t] { loop(lfds[static_cast<size_t>(t)], *g_stores[static_cast<size_t>(t)]); });
  loop(lfds[0], *g_stores[0]);
  for (auto& th : pool) th.join();
  for (int fd : lfds) ::close(fd);
  std::printf("%s\n", stats_json(0).c_str());
  if (dump_file) dump(dump_file);
  return 0;
}
