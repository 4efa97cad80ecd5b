#include "runtime/io/pg/call_pool.hpp"

#include "runtime/config/model.hpp"
#include "runtime/config/redact.hpp"
#include "runtime/io/pg/session.hpp"

#include <pqxx/pqxx>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace fraiseql {

std::string pg_call_sql(const std::string& quoted_function) {
  return "SELECT " + quoted_function + "($1::jsonb, $2::jsonb)";
}

bool pg_sqlstate_retryable(const std::string& s) {
  return s == "40001" || s == "40P01" || s == "57014" || s == "55P03" || s == "53300" ||
         s.rfind("57P", 0) == 0 || s.rfind("08", 0) == 0;
}

struct pg_call_pool::impl {
  struct job {
    pg_call call;
    callback cb;
  };
  std::mutex mtx;
  std::condition_variable cv;
  std::deque<job> queue;
  bool stop = false;
  std::vector<std::thread> threads;

  static pg_call_result run_one(std::map<std::string, std::unique_ptr<pqxx::connection>>& conns,
                                const pg_call& c) {
    pg_call_result r;
    auto& conn = conns[c.url];
    try {
      if (!conn || !conn->is_open()) {
        conn.reset();
        conn = std::make_unique<pqxx::connection>(
            with_fallback_application_name(c.url, process_application_name()));
      }
      pqxx::work w{*conn};
      // statement_timeout cancels the function on the server when the attempt
      // runs out of time (SQLSTATE 57014, retried).
      w.exec0("SET LOCAL statement_timeout = " +
              std::to_string(std::max<int64_t>(1, c.timeout.count())));
      w.exec_params(pg_call_sql(c.function), c.envelope, c.params);
      w.commit();
      r.ok = true;
    } catch (const pqxx::broken_connection& e) {
      conn.reset();
      r.connection_lost = true;
      r.error = std::string("connection to ") + redact_url(c.url) + " failed: " + e.what();
    } catch (const pqxx::in_doubt_error& e) {
      conn.reset();
      r.connection_lost = true;
      r.error = std::string("connection lost during commit (outcome unknown): ") + e.what();
    } catch (const pqxx::sql_error& e) {
      r.sqlstate = e.sqlstate();
      r.error = e.what();
      // A connection the server closed must not be reused.
      if (!conn || !conn->is_open() || r.sqlstate.rfind("57P", 0) == 0 ||
          r.sqlstate.rfind("08", 0) == 0) {
        conn.reset();
        r.connection_lost = true;
      }
    } catch (const std::exception& e) {
      const bool open = conn && conn->is_open();
      if (!open) {
        conn.reset();
        r.connection_lost = true;
      }
      r.error = e.what();
    }
    while (!r.error.empty() && (r.error.back() == '\n' || r.error.back() == ' '))
      r.error.pop_back();
    return r;
  }

  void worker() {
    std::map<std::string, std::unique_ptr<pqxx::connection>> conns;
    for (;;) {
      job j;
      {
        std::unique_lock<std::mutex> g{mtx};
        cv.wait(g, [&] { return stop || !queue.empty(); });
        if (stop) return;
        j = std::move(queue.front());
        queue.pop_front();
      }
      j.cb(run_one(conns, j.call));
    }
  }
};

pg_call_pool::pg_call_pool(size_t workers) : impl_(std::make_unique<impl>()) {
  for (size_t i = 0; i < std::max<size_t>(1, workers); ++i)
    impl_->threads.emplace_back([this] { impl_->worker(); });
}

pg_call_pool::~pg_call_pool() {
  std::deque<impl::job> rest;
  {
    std::lock_guard<std::mutex> g{impl_->mtx};
    impl_->stop = true;
    rest.swap(impl_->queue);
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->threads) t.join();
  for (auto& j : rest) {
    pg_call_result r;
    r.error = "shutting down";
    r.connection_lost = true;
    j.cb(std::move(r));
  }
}

void pg_call_pool::submit(pg_call call, callback cb) {
  {
    std::lock_guard<std::mutex> g{impl_->mtx};
    impl_->queue.push_back(impl::job{std::move(call), std::move(cb)});
  }
  impl_->cv.notify_one();
}

}  // namespace fraiseql
