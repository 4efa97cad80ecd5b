// bench_sink_load: measures how many requests/s bench_sink answers.
//
//   bench_sink_load --port P [--conns C] [--requests N] [--body-bytes B]
//
// C keep-alive connections on loopback, each sending one POST at a time (as
// libcurl and Node do: no pipelining) with an envelope-like JSON body
// (unique Idempotency-Key, entity_id 1..N, timestamp = send time). Prints one
// JSON line: requests, seconds, requests_per_s.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ctime>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct client {
  int fd = -1;
  std::string out;
  size_t out_off = 0;
  std::string in;
  bool busy = false;
};

std::string iso_now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000);
  return buf;
}

/// Bytes of the first complete response at the start of s, or 0.
size_t response_size(const std::string& s) {
  auto end = s.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  size_t len = 0;
  auto cl = s.find("Content-Length:");
  if (cl != std::string::npos && cl < end) len = std::strtoul(s.c_str() + cl + 15, nullptr, 10);
  if (s.size() < end + 4 + len) return 0;
  return end + 4 + len;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, conns = 16;
  long total = 200000;
  size_t body_bytes = 400;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--port")
      port = std::atoi(argv[i + 1]);
    else if (a == "--conns")
      conns = std::atoi(argv[i + 1]);
    else if (a == "--requests")
      total = std::atol(argv[i + 1]);
    else if (a == "--body-bytes")
      body_bytes = std::strtoul(argv[i + 1], nullptr, 10);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (!port) {
    std::fprintf(stderr,
                 "usage: bench_sink_load --port P [--conns C] [--requests N] [--body-bytes B]\n");
    return 2;
  }
  int ep = epoll_create1(0);
  std::vector<client> cs(static_cast<size_t>(conns));
  for (size_t i = 0; i < cs.size(); ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
      std::perror("connect");
      return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    cs[i].fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  long sent = 0, done = 0;
  std::string pad(body_bytes > 200 ? body_bytes - 200 : 0, 'x');
  auto send_one = [&](client& c) {
    ++sent;
    std::string body = "{\"id\":\"load-" + std::to_string(sent) +
                       "\",\"event_type\":\"INSERT\","
                       "\"entity_type\":\"Item\",\"entity_id\":\"" +
                       std::to_string(sent) + "\",\"timestamp\":\"" + iso_now() +
                       "\",\"data\":{\"pad\":\"" + pad + "\"}}";
    c.out =
        "POST /load HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Idempotency-Key: load-" +
        std::to_string(sent) + ":load:0\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n != static_cast<ssize_t>(c.out.size())) {
      std::fprintf(stderr, "short send\n");
      std::exit(1);
    }
    c.busy = true;
  };
  auto t0 = std::chrono::steady_clock::now();
  for (auto& c : cs)
    if (sent < total) send_one(c);
  std::vector<epoll_event> evs(256);
  char buf[65536];
  while (done < total) {
    int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 5000);
    if (n <= 0) {
      std::fprintf(stderr, "timeout waiting for responses (%ld of %ld)\n", done, total);
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      auto& c = cs[evs[static_cast<size_t>(i)].data.u64];
      ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r <= 0) {
        std::fprintf(stderr, "connection closed by the sink\n");
        return 1;
      }
      c.in.append(buf, static_cast<size_t>(r));
      while (size_t sz = response_size(c.in)) {
        c.in.erase(0, sz);
        ++done;
        c.busy = false;
        if (sent < total) send_one(c);
      }
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "{\"bench\":\"sink_load\",\"conns\":%d,\"requests\":%ld,\"body_bytes\":%zu,"
      "\"seconds\":%.3f,\"requests_per_s\":%.0f}\n",
      conns, total, body_bytes, secs, static_cast<double>(total) / secs);
  for (auto& c : cs) ::close(c.fd);
  return 0;
}
