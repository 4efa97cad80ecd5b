#include "runtime/core/health.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/ops/metrics.hpp"

#include <doctest/doctest.h>

#include <memory>

using fraiseql::health_state;
using ms = std::chrono::milliseconds;

TEST_SUITE("health") {
  TEST_CASE("a new node is live but not ready until it leads") {
    health_state h(ms(300000));
    CHECK(h.live().ok);
    CHECK(h.live().reason == "ok");
    CHECK_FALSE(h.ready().ok);
    CHECK(h.ready().reason == "starting");
  }

  TEST_CASE("standby and database outages are reasons, not liveness failures") {
    health_state h(ms(300000));
    h.waiting("standby: listener 'x' is led by another node");
    CHECK(h.live().ok);
    CHECK(h.ready().reason == "standby: listener 'x' is led by another node");
    h.leading();
    CHECK_FALSE(h.ready().ok);  // the listener has not read yet
    CHECK(h.ready().reason.rfind("database unreachable", 0) == 0);
    h.listener_connected(true);
    CHECK(h.ready().ok);
    CHECK(h.ready().reason == "ok");
    h.listener_connected(false);
    CHECK_FALSE(h.ready().ok);
    CHECK(h.live().ok);
    h.listener_connected(true);
    h.waiting("database unreachable: refused");  // lost leadership: waits again
    CHECK_FALSE(h.ready().ok);
    CHECK(h.ready().reason == "database unreachable: refused");
  }

  TEST_CASE("a NATS worker runs no listener: it is ready once it runs, without one") {
    health_state h{std::chrono::milliseconds(0)};
    h.leading();
    CHECK_FALSE(h.ready().ok);  // a listener process waits for its connection
    h.without_listener();
    CHECK(h.ready().ok);
    h.stopping();
    CHECK_FALSE(h.ready().ok);
  }

  TEST_CASE("a stale checkpoint makes the node unready; 0 disables the check") {
    health_state h(ms(2000));
    h.leading();
    h.listener_connected(true);
    h.checkpoint_age(2.0);
    CHECK(h.ready().ok);  // at the limit is still fine
    h.checkpoint_age(2.5);
    CHECK_FALSE(h.ready().ok);
    CHECK(h.ready().reason == "checkpoint stale: not saved for 2 s (limit 2 s)");
    CHECK(h.live().ok);
    h.checkpoint_age(0);
    CHECK(h.ready().ok);

    health_state off(ms(0));
    off.leading();
    off.listener_connected(true);
    off.checkpoint_age(1e9);
    CHECK(off.ready().ok);
  }

  TEST_CASE("stopping and failed actors fail both probes") {
    health_state h(ms(1000));
    h.leading();
    h.listener_connected(true);
    h.stopping();
    CHECK_FALSE(h.live().ok);
    CHECK(h.live().reason == "stopping");
    CHECK(h.ready().reason == "stopping");
    health_state f(ms(1000));
    f.failed("actor 7");
    CHECK(f.live().reason == "actor failed: actor 7");
    CHECK_FALSE(f.ready().ok);
  }

  TEST_CASE("metrics keep the health state in step with the gauges") {
    std::vector<std::string> errors;
    auto reg = fraiseql::observer_registry::build({}, errors);
    REQUIRE(errors.empty());
    auto h = std::make_shared<health_state>(ms(1000));
    fraiseql::metrics m(*reg, "l1", h);
    h->leading();
    m.listener_health(true);
    CHECK(h->ready().ok);
    m.checkpoint_age(5);
    CHECK(h->ready().reason.rfind("checkpoint stale", 0) == 0);
    m.checkpoint_age(0);
    m.listener_health(false);
    CHECK(h->ready().reason.rfind("database unreachable", 0) == 0);
    m.leader(true);
    m.events_read(3);
    m.checkpoint_position(42, 7);
    const auto text = m.scrape();
    CHECK(text.find("observer_listener_health{listener_id=\"l1\"} 0") != std::string::npos);
    CHECK(text.find("observer_leader{listener_id=\"l1\"} 1") != std::string::npos);
    CHECK(text.find("observer_events_read_total{listener_id=\"l1\"} 3") != std::string::npos);
    CHECK(text.find("observer_checkpoint_txid{listener_id=\"l1\"} 42") != std::string::npos);
    CHECK(text.find("observer_checkpoint_event_id{listener_id=\"l1\"} 7") != std::string::npos);
    CHECK(text.find(std::string("observer_build_info{version=\"") + fraiseql::observer_version() +
                    "\"} 1") != std::string::npos);
  }

  TEST_CASE("NATS series: the connection gauge only once reported, partitions until given up") {
    std::vector<std::string> errors;
    auto reg = fraiseql::observer_registry::build({}, errors);
    REQUIRE(errors.empty());
    fraiseql::metrics m(*reg, "l1", std::make_shared<health_state>(ms(1000)));
    // A node on transport "postgres" never reports it: no series, so that
    // NatsDisconnected (observer_nats_connected == 0) cannot fire there.
    CHECK(m.scrape().find("\nobserver_nats_connected ") == std::string::npos);
    m.nats_connected(false);
    CHECK(m.scrape().find("\nobserver_nats_connected 0") != std::string::npos);
    m.nats_connected(true);
    CHECK(m.scrape().find("\nobserver_nats_connected 1") != std::string::npos);
    m.nats_consumer(3, 10, 2, 1000);
    m.nats_consumer(5, 0, 0, 1000);
    auto text = m.scrape();
    CHECK(text.find("observer_nats_consumer_ack_pending{partition=\"3\"} 2") != std::string::npos);
    CHECK(text.find("observer_nats_consumer_pending{partition=\"5\"} 0") != std::string::npos);
    // Handed over: its series go (a stale value would keep alerting).
    m.nats_consumer_gone(3);
    m.nats_consumer_gone(7);  // never reported: nothing to remove
    text = m.scrape();
    CHECK(text.find("partition=\"3\"") == std::string::npos);
    CHECK(text.find("observer_nats_consumer_max_ack_pending{partition=\"5\"} 1000") !=
          std::string::npos);
  }
}
