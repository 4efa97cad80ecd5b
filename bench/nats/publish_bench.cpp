// nats_publish_bench: JetStream asynchronous publish throughput into an R1
// stream on loopback.
//
// Method. A private nats-server (scripts/nats.sh: JetStream, file storage,
// loopback) unless NATS_URL names one (a comma list for a cluster). A fresh
// R1 file stream per run
// capturing bench_<pid>.>. Each message: a 1 KB payload (size settable) on
// subject bench_<pid>.db.<partition>.entity.op with a Nats-Msg-Id of
// "db:<seq>" (what the bridge will send), so the server does its duplicate
// check as it will for the bridge.
//   - bare nats.c: js_PublishMsgAsync in a loop, nats.c's own in-flight bound
//     (PublishAsync.MaxPending = window; a full window stalls the loop inside
//     nats.c), an ack handler counting acks, js_PublishAsyncComplete at the
//     end. The reference the bridge will be compared with (issue 17).
//   - async_publisher: the same load through observer_io_nats (its own window:
//     `full` -> wait_room, then retry; one completion per message).
// Timed from the first publish until the last ack. Client and server share
// the machine's cores (2 on the reference machine). Median of `runs`.
// Prints figures; asserts nothing (benchmarks are never timed tests).
//
// replicas=3: an R3 stream on a private 3-server loopback cluster
// (scripts/nats.sh start-cluster; all three servers on the same 2 cores).
//
// Usage: nats_publish_bench [events=100000] [payload_bytes=1024] [window=4096] [runs=3]
//                           [replicas=1] [ack_timeout_ms=5000]
// ack_timeout_ms: the per-publish ack timeout (bare: jsPubOptions.MaxWait, 0 =
// none, at least 1000 otherwise: see run_bare; async_publisher: publisher_options::ack_timeout, at
// least 1). nats.c keeps one timeout entry per publish until its deadline passes, acked or not: the
// RSS column shows what that costs at this rate.

#include "runtime/io/nats/connection.hpp"
#include "runtime/io/nats/jetstream.hpp"
#include "runtime/io/nats/publisher.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace fraiseql;
using clock_type = std::chrono::steady_clock;

namespace {

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string env_value(const std::string& file, const std::string& name) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + "=", 0) == 0) return line.substr(name.size() + 1);
  }
  return {};
}

/// Resident set size now (bytes), from /proc/self/statm.
uint64_t rss_bytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

/// Samples the RSS every 20 ms while alive; peak() is the highest seen.
class rss_sampler {
 public:
  rss_sampler()
      : thread_([this] {
          while (!stop_) {
            uint64_t now = rss_bytes();
            uint64_t seen = peak_.load();
            while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }) {}
  ~rss_sampler() {
    stop_ = true;
    thread_.join();
  }
  uint64_t peak() const { return peak_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> peak_{0};
  std::thread thread_;
};

int64_t ack_timeout_ms = 5000;

struct run_result {
  double seconds = 0;
  uint64_t acked = 0;
  uint64_t errors = 0;
  uint64_t peak_rss = 0;
};

struct bare_state {
  std::atomic<uint64_t> acked{0};
  std::atomic<uint64_t> errors{0};
};

void bare_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr*, void* closure) {
  auto* st = static_cast<bare_state*>(closure);
  if (pa != nullptr) {
    st->acked.fetch_add(1, std::memory_order_relaxed);
  } else {
    st->errors.fetch_add(1, std::memory_order_relaxed);
  }
  natsMsg_Destroy(msg);
}

std::string subject_for(const std::string& prefix, uint64_t i) {
  // 8 partitions, like the bridge's database.partition.entity.op subjects.
  return prefix + ".db." + std::to_string(i % 8) + ".order.insert";
}

run_result run_bare(nats_connection& conn, const std::string& prefix, uint64_t events,
                    const std::string& payload, int64_t window) {
  bare_state st;
  jsOptions o;
  jsOptions_Init(&o);
  o.PublishAsync.MaxPending = window;
  o.PublishAsync.AckHandler = &bare_ack;
  o.PublishAsync.AckHandlerClosure = &st;
  o.PublishAsync.StallWait = 5000;
  jsCtx* js = nullptr;
  nats_throw("JetStream context", natsConnection_JetStream(&js, conn.raw(), &o));
  const auto t0 = clock_type::now();
  for (uint64_t i = 0; i < events; ++i) {
    const std::string id = "db:" + std::to_string(i);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id.c_str();
    // nats.c 3.4.1 registers the message for its MaxWait timer before writing
    // it: a timeout firing meanwhile lets the ack handler destroy it while
    // js_PublishMsgAsync still copies it (SIGSEGV seen with 1 ms). Hence >= 1 s.
    po.MaxWait = ack_timeout_ms == 0 ? 0 : std::max<int64_t>(ack_timeout_ms, 1000);
    natsMsg* m = nullptr;
    natsMsg_Create(&m, subject_for(prefix, i).c_str(), nullptr, payload.data(),
                   static_cast<int>(payload.size()));
    natsStatus s = js_PublishMsgAsync(js, &m, &po);
    natsMsg_Destroy(m);  // no-op when nats.c took it
    if (s != NATS_OK) st.errors.fetch_add(1);
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  js_PublishAsyncComplete(js, &po);
  run_result r{seconds_since(t0), st.acked.load(), st.errors.load()};
  jsCtx_Destroy(js);
  return r;
}

run_result run_wrapper(const std::shared_ptr<nats_connection>& conn, const std::string& prefix,
                       uint64_t events, const std::string& payload, size_t window) {
  std::atomic<uint64_t> acked{0}, errors{0};
  publisher_options po;
  po.max_pending = window;
  po.ack_timeout = std::chrono::milliseconds(std::max<int64_t>(1, ack_timeout_ms));
  async_publisher pub(conn, po, [&](const publish_result& r) {
    if (r.stored()) {
      acked.fetch_add(1, std::memory_order_relaxed);
    } else {
      errors.fetch_add(1, std::memory_order_relaxed);
    }
  });
  const auto t0 = clock_type::now();
  for (uint64_t i = 0; i < events; ++i) {
    const std::string id = "db:" + std::to_string(i);
    const std::string subject = subject_for(prefix, i);
    for (;;) {
      auto r = pub.publish(subject, payload, id, i);
      if (r.accepted()) break;
      if (r.status != async_publisher::submit::full) {
        errors.fetch_add(1);
        break;
      }
      pub.wait_room(std::chrono::milliseconds(1000));
    }
  }
  pub.wait_all(std::chrono::seconds(60));
  return {seconds_since(t0), acked.load(), errors.load()};
}

int run_phase(const char* which, const std::string& url, uint64_t events, size_t payload_bytes,
              size_t window, int runs, int replicas) {
  try {
    nats_connection_options co;
    for (size_t at = 0; at <= url.size();) {
      const size_t comma = std::min(url.find(',', at), url.size());
      if (comma > at) co.urls.push_back(url.substr(at, comma - at));
      at = comma + 1;
    }
    auto conn = nats_connection::connect(co);
    const std::string payload(payload_bytes, 'x');
    {
      std::vector<run_result> results;
      for (int r = 0; r < runs; ++r) {
        stream_config sc;
        sc.name = "bench_" + std::to_string(getpid()) + "_" + std::to_string(r);
        sc.subjects = {sc.name + ".>"};
        sc.replicas = replicas;
        delete_stream(*conn, sc.name);
        ensure_stream(*conn, sc);
        run_result res;
        {
          rss_sampler rss;
          res = std::string(which) == "bare nats.c"
                    ? run_bare(*conn, sc.name, events, payload, static_cast<int64_t>(window))
                    : run_wrapper(conn, sc.name, events, payload, window);
          res.peak_rss = rss.peak();
        }
        auto info = get_stream_info(*conn, sc.name);
        if (info && info->messages != res.acked) {
          std::fprintf(stderr, "note: %s run %d: %llu acked but %llu stored\n", which, r,
                       static_cast<unsigned long long>(res.acked),
                       static_cast<unsigned long long>(info->messages));
        }
        delete_stream(*conn, sc.name);
        results.push_back(res);
      }
      std::sort(results.begin(), results.end(),
                [](const run_result& a, const run_result& b) { return a.seconds < b.seconds; });
      const run_result& med = results[results.size() / 2];
      const double rate = static_cast<double>(med.acked) / med.seconds;
      uint64_t peak = 0;
      for (const auto& x : results) peak = std::max(peak, x.peak_rss);
      std::printf("%-16s %10.2f %12.0f %10.1f %8llu %14.1f\n", which, med.seconds, rate,
                  rate * static_cast<double>(payload_bytes) / 1e6,
                  static_cast<unsigned long long>(med.errors), static_cast<double>(peak) / 1e6);
      std::printf(
          "{\"bench\":\"nats_publish\",\"publisher\":\"%s\",\"replicas\":%d,\"events\":%llu,"
          "\"payload_bytes\":%zu,"
          "\"window\":%zu,\"seconds\":%.3f,\"events_per_s\":%.0f,\"errors\":%llu,"
          "\"peak_rss_bytes\":%llu}\n",
          which, replicas, static_cast<unsigned long long>(events), payload_bytes, window,
          med.seconds, rate, static_cast<unsigned long long>(med.errors),
          static_cast<unsigned long long>(peak));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nats_publish_bench: %s: %s\n", which, e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t events = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100000;
  const size_t payload_bytes = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1024;
  const size_t window = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 4096;
  const int runs = argc > 4 ? std::atoi(argv[4]) : 3;
  const int replicas = argc > 5 ? std::atoi(argv[5]) : 1;
  ack_timeout_ms = argc > 6 ? std::atoll(argv[6]) : 5000;

  std::string url = std::getenv("NATS_URL") != nullptr ? std::getenv("NATS_URL") : "";
  std::string own_dir;
  if (url.empty()) {
    own_dir = "/tmp/nats-bench-" + std::to_string(getpid());
    const std::string start = replicas > 1 ? " start-cluster " : " start ";
    if (std::system((std::string(NATS_SH) + start + own_dir + " >/dev/null </dev/null").c_str()) !=
        0) {
      std::fprintf(stderr, "nats_publish_bench: could not start nats-server (%s start)\n", NATS_SH);
      return 1;
    }
    url = env_value(own_dir + "/env", "NATS_URLS");
  }
  int rc = 0;
  std::printf(
      "# JetStream async publish, R%d file stream, %llu events of %zu bytes, window %zu, "
      "median of %d runs, ack timeout %lld ms, server %s\n",
      replicas, static_cast<unsigned long long>(events), payload_bytes, window, runs,
      static_cast<long long>(ack_timeout_ms), url.c_str());
  std::printf(
      "# peak RSS: the publisher's own process (connection, payload buffers, pending\n"
      "# publishes and their ack-timeout entries), sampled every 20 ms during a run\n");
  std::printf("%-16s %10s %12s %10s %8s %14s\n", "publisher", "seconds", "events/s", "MB/s",
              "errors", "peak RSS MB");
  // Each publisher in a process of its own: its RSS is its own (freed heap
  // of an earlier phase would stay in the peak otherwise).
  for (const char* which : {"bare nats.c", "async_publisher"}) {
    std::fflush(stdout);
    const pid_t child = fork();
    if (child < 0) {
      std::perror("nats_publish_bench: fork");
      rc = 1;
      break;
    }
    if (child == 0) {
      const int r = run_phase(which, url, events, payload_bytes, window, runs, replicas);
      std::fflush(stdout);
      _exit(r);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status)) {
      std::fprintf(stderr, "nats_publish_bench: the %s phase died of signal %d (%s)\n", which,
                   WTERMSIG(status), strsignal(WTERMSIG(status)));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }
  if (!own_dir.empty()) {
    std::system((std::string(NATS_SH) + " stop " + own_dir + " >/dev/null </dev/null").c_str());
  }
  return rc;
}
