// Job queue: config keys and validation, the async rule, the outcome decision
// and the envelope round trip (the PostgreSQL side is covered by
// tests/integration/test_jobs.py).

#include "messages/attempt.hpp"
#include "runtime/config/loader.hpp"
#include "runtime/config/model.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/core/job_rules.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <string>

using namespace fraiseql;

namespace {

std::optional<std::string> no_env(const char*) {
  return std::nullopt;
}

const char* const db = "[database]\nurl = \"postgresql://localhost/app\"\n";

std::string errors_of(const config_result& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.to_string() + "\n";
  return out;
}

config_result load(const std::string& text) {
  return load_config_string(std::string(db) + text, "jobs.toml", no_env);
}

std::string webhook_observer(const std::string& action_extra) {
  return "[[observers]]\nname = \"o\"\nevent_type = \"INSERT\"\nentity = \"Order\"\n"
         "[[observers.actions]]\ntype = \"webhook\"\nurl = \"http://h/x\"\n" +
         action_extra + "[[observers.actions]]\ntype = \"log\"\n";
}

}  // namespace

TEST_SUITE("job_queue") {
  TEST_CASE("[job_queue] defaults: disabled, every action inline") {
    auto r = load(webhook_observer(""));
    REQUIRE_MESSAGE(r, errors_of(r));
    const auto& q = r.value->job_queue;
    CHECK_FALSE(q.enabled);
    CHECK(q.workers == 4);
    CHECK(q.poll_interval_ms == 1000);
    CHECK(q.batch_size == 100);
    CHECK(q.lease_ms == 30000);
    CHECK_FALSE(r.value->observers[0].actions[0].async);
    CHECK_FALSE(r.value->observers[0].actions[1].async);
  }

  TEST_CASE("every [job_queue] key is read; async is per action") {
    auto r = load(
        "[job_queue]\nenabled = true\nworkers = 16\npoll_interval_ms = 250\n"
        "batch_size = 500\nlease_ms = 5000\n" +
        webhook_observer("async = true\n"));
    REQUIRE_MESSAGE(r, errors_of(r));
    const auto& q = r.value->job_queue;
    CHECK(q.enabled);
    CHECK(q.workers == 16);
    CHECK(q.poll_interval_ms == 250);
    CHECK(q.batch_size == 500);
    CHECK(q.lease_ms == 5000);
    CHECK(r.value->observers[0].actions[0].async);
    CHECK_FALSE(r.value->observers[0].actions[1].async);  // log, not marked
  }

  TEST_CASE("async = false keeps an action inline with the queue on") {
    auto r = load("[job_queue]\nenabled = true\n" + webhook_observer("async = false\n"));
    REQUIRE_MESSAGE(r, errors_of(r));
    CHECK_FALSE(r.value->observers[0].actions[0].async);
  }

  TEST_CASE("email is async by default only when the queue is enabled") {
    CHECK(async_by_default("email", true));
    CHECK_FALSE(async_by_default("email", false));
    CHECK_FALSE(async_by_default("webhook", true));
    CHECK_FALSE(async_by_default("log", true));
    CHECK_FALSE(async_by_default("slack", true));
  }

  TEST_CASE("bad [job_queue] values and async errors are located") {
    struct bad {
      std::string toml;
      const char* key;
      uint32_t line;
      const char* message;
    };
    // `db` takes lines 1-2.
    const bad cases[] = {
        {"[job_queue]\nenabled = \"yes\"\n", "job_queue.enabled", 4, "expected a boolean"},
        {"[job_queue]\nworkers = 0\n", "job_queue.workers", 4, "between 1 and 10000 (got 0)"},
        {"[job_queue]\nworkers = 10001\n", "job_queue.workers", 4, "between 1 and 10000"},
        {"[job_queue]\npoll_interval_ms = 0\n", "job_queue.poll_interval_ms", 4,
         "between 1 and 3600000"},
        {"[job_queue]\nbatch_size = 10001\n", "job_queue.batch_size", 4, "between 1 and 10000"},
        {"[job_queue]\nlease_ms = 999\n", "job_queue.lease_ms", 4, "between 1000 and 86400000"},
        {"[job_queue]\nlease = 5000\n", "job_queue.lease", 4, "did you mean 'lease_ms'"},
        {"[job_queue]\nvisibility_timeout_ms = 5\n", "job_queue.visibility_timeout_ms", 4,
         "unknown key"},
        {webhook_observer("async = true\n"), "observers[0].actions[0].async", 10,
         "needs the job queue: set enabled = true in [job_queue]"},
        {"[job_queue]\nenabled = true\n" + webhook_observer("async = \"yes\"\n"),
         "observers[0].actions[0].async", 12, "expected a boolean"},
        {"[job_queue]\nenabled = false\n" + webhook_observer("async = true\n"),
         "observers[0].actions[0].async", 12, "needs the job queue"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.toml);
      auto r = load(c.toml);
      REQUIRE_FALSE(r);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].key == c.key);
      CHECK(r.errors[0].line == c.line);
      CHECK_MESSAGE(r.errors[0].message.find(c.message) != std::string::npos, r.errors[0].message);
    }
  }

  TEST_CASE("async on a log action is accepted (any action type may be queued)") {
    auto r = load(
        "[job_queue]\nenabled = true\n[[observers]]\nevent_type = \"INSERT\"\n"
        "entity = \"Order\"\n[[observers.actions]]\ntype = \"log\"\nasync = true\n");
    REQUIRE_MESSAGE(r, errors_of(r));
    CHECK(r.value->observers[0].actions[0].async);
  }

  TEST_CASE("decide_job: success completes") {
    retry_config rc;
    CHECK(decide_job(attempt_outcome::success(), 1, 3, rc, 0.0).kind == job_decision::complete);
    CHECK(decide_job(attempt_outcome::success(), 3, 3, rc, 0.0).kind == job_decision::complete);
  }

  TEST_CASE(
      "decide_job: retryable failures back off per the observer's policy until the last attempt") {
    retry_config rc;
    rc.max_attempts = 4;
    rc.initial_delay_ms = 100;
    rc.max_delay_ms = 1000;
    rc.strategy = backoff_strategy::exponential;
    auto fail = attempt_outcome::failure("HTTP 503", true);
    // Attempts 1, 2, 3 failed: 100, 200, 400 ms (no jitter drawn).
    auto d1 = decide_job(fail, 1, 4, rc, 0.0);
    CHECK(d1.kind == job_decision::retry);
    CHECK(d1.delay == std::chrono::milliseconds(100));
    CHECK(decide_job(fail, 2, 4, rc, 0.0).delay == std::chrono::milliseconds(200));
    CHECK(decide_job(fail, 3, 4, rc, 0.0).delay == std::chrono::milliseconds(400));
    // The fourth was the last one.
    CHECK(decide_job(fail, 4, 4, rc, 0.0).kind == job_decision::dead_letter);
    // An attempt counted past the budget (interrupted last attempt) too.
    CHECK(decide_job(fail, 5, 4, rc, 0.0).kind == job_decision::dead_letter);
  }

  TEST_CASE("decide_job: final failures go to the DLQ at once, Retry-After stretches a delay") {
    retry_config rc;
    rc.max_attempts = 5;
    CHECK(decide_job(attempt_outcome::failure("HTTP 422", false), 1, 5, rc, 0.0).kind ==
          job_decision::dead_letter);
    auto o = attempt_outcome::failure("HTTP 429", true);
    o.retry_after = std::chrono::milliseconds(7000);
    auto d = decide_job(o, 1, 5, rc, 0.0);
    CHECK(d.kind == job_decision::retry);
    CHECK(d.delay == std::chrono::milliseconds(7000));
    o.retry_after = std::chrono::milliseconds(10);  // shorter than the backoff: backoff wins
    CHECK(decide_job(o, 1, 5, rc, 0.0).delay == std::chrono::milliseconds(100));
    o.retry_after = std::chrono::hours(5);  // capped at an hour
    CHECK(decide_job(o, 1, 5, rc, 0.0).delay == std::chrono::milliseconds(3600 * 1000));
  }

  TEST_CASE("event_from_envelope rebuilds the event the enqueue path stored") {
    auto ev =
        make_event(3, position{987654321, 42}, "0b7e7c1e-0000-4000-8000-000000000001", "UPDATE",
                   "Order", "17", R"({"id": 17, "status": "shipped", "total": 10.50})",
                   R"({"id": 17, "status": "new", "total": 10.50})", "2026-11-22T10:00:00.000001Z",
                   std::string("acme"), std::nullopt, std::nullopt);
    // PostgreSQL hands jsonb back re-serialized; any equivalent text must do.
    const std::string stored = boost::json::serialize(boost::json::parse(ev->envelope_json));
    auto back = event_from_envelope(stored, 9);
    CHECK(back->seq == 9);
    CHECK(back->id == ev->id);
    CHECK(back->event_type == "UPDATE");
    CHECK(back->entity_type == "Order");
    CHECK(back->entity_id == "17");
    CHECK(back->pos == ev->pos);
    CHECK(back->envelope == ev->envelope);
    CHECK(back->envelope_json == stored);
  }

  TEST_CASE("event_from_envelope names what is wrong") {
    auto msg = [](const std::string& json) {
      try {
        event_from_envelope(json, 1);
      } catch (const std::exception& e) {
        return std::string(e.what());
      }
      return std::string("no error");
    };
    CHECK(msg("{").find("not JSON") != std::string::npos);
    CHECK(msg("[1]").find("not a JSON object") != std::string::npos);
    CHECK(msg(R"({"event_type":"INSERT","entity_type":"A","entity_id":"1"})").find("'id'") !=
          std::string::npos);
    CHECK(msg(R"({"id":"x","event_type":1,"entity_type":"A","entity_id":"1"})")
              .find("'event_type'") != std::string::npos);
    CHECK(msg(R"({"id":"x","event_type":"INSERT","entity_type":"A","entity_id":"1",
                  "position":{"txid":"abc","pk":1}})")
              .find("malformed position") != std::string::npos);
  }
}
