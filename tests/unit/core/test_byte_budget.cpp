// The byte budget (runtime/core/byte_budget.hpp): charges follow the events'
// lifetimes, whoever holds the last reference; and the footprint an event is
// charged grows with what it holds.

#include "runtime/core/byte_budget.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/core/journal.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <limits>
#include <string>
#include <thread>
#include <vector>

using namespace fraiseql;

namespace {

event_ptr doc(uint64_t seq, size_t body_bytes) {
  std::string data = "{\"blob\": \"" + std::string(body_bytes, 'x') + "\"}";
  return make_event(seq, position{1, static_cast<int64_t>(seq)}, "e-" + std::to_string(seq),
                    "INSERT", "Doc", std::to_string(seq), data, "", "2026-12-03T00:00:00Z",
                    std::nullopt, std::nullopt, std::nullopt);
}

}  // namespace

TEST_SUITE("byte budget") {
  TEST_CASE("room is the limit minus what is charged, 0 at or over it; 0 is unbounded") {
    byte_budget b(1000);
    CHECK(b.room() == 1000);
    b.charge(400);
    CHECK(b.in_use() == 400);
    CHECK(b.room() == 600);
    b.charge(700);
    CHECK(b.room() == 0);
    CHECK(b.peak() == 1100);
    CHECK(b.largest() == 700);
    b.release(1100);
    CHECK(b.in_use() == 0);
    CHECK(b.room() == 1000);
    CHECK(b.peak() == 1100);
    byte_budget unbounded(0);
    unbounded.charge(1u << 30);
    CHECK(unbounded.room() == std::numeric_limits<uint64_t>::max());
  }

  TEST_CASE("a charged event releases its footprint when its last copy goes, on any thread") {
    auto b = std::make_shared<byte_budget>(1u << 20);
    auto ev = charge_event(doc(1, 1000), b);
    const auto fp = ev->footprint;
    CHECK(fp > 1000);
    CHECK(b->in_use() == fp);
    auto copy = ev;  // e.g. a retry waiting for its backoff
    ev.reset();
    CHECK(b->in_use() == fp);
    std::thread t([c = std::move(copy)]() mutable { c.reset(); });
    t.join();
    CHECK(b->in_use() == 0);
    CHECK(b->largest() == fp);
  }

  TEST_CASE("a null budget leaves the event as it is") {
    auto ev = doc(1, 10);
    CHECK(charge_event(ev, nullptr) == ev);
  }

  TEST_CASE("the footprint covers the envelope's text and its parsed tree") {
    auto small = doc(1, 10);
    auto large = doc(2, 200 * 1024);
    // The body is held twice: the serialized envelope and the parsed string.
    CHECK(large->footprint >= 2 * 200 * 1024);
    CHECK(large->footprint < 2 * 200 * 1024 + 4096);
    CHECK(small->footprint < 4096);
    CHECK(large->row_bytes == large->envelope.at("data").as_object().at("blob").as_string().size() +
                                  std::string("{\"blob\": \"\"}").size());
  }
}

TEST_SUITE("journal bytes") {
  TEST_CASE("the journal evicts the oldest entries once their events pass max_bytes") {
    const auto one = doc(0, 10000)->footprint;
    journal j(100, 3 * one + one / 2);  // room for three such events
    for (uint64_t i = 1; i <= 5; ++i) j.routed(doc(i, 10000), {0}, {});
    CHECK(j.size() == 3);
    CHECK(j.bytes() <= j.max_bytes());
    CHECK_FALSE(j.find("e-1"));
    CHECK_FALSE(j.find("e-2"));
    CHECK(j.find("e-3"));
    CHECK(j.find("e-5"));
  }

  TEST_CASE("the newest entry is kept even when it alone is over max_bytes") {
    journal j(100, 1000);
    j.routed(doc(1, 10), {0}, {});
    j.routed(doc(2, 5000), {0}, {});
    CHECK(j.size() == 1);
    CHECK(j.find("e-2"));
  }

  TEST_CASE("events the journal keeps stay charged; evicted ones are released") {
    auto b = std::make_shared<byte_budget>(0);
    const auto one = doc(0, 10000)->footprint;
    journal j(100, 2 * one + one / 2);
    for (uint64_t i = 1; i <= 4; ++i) j.routed(charge_event(doc(i, 10000), b), {0}, {});
    CHECK(j.size() == 2);
    CHECK(b->in_use() == j.bytes());
  }
}

TEST_SUITE("oversize events") {
  TEST_CASE("an oversize event carries no body and says its size and the limit") {
    auto ev =
        make_event(3, position{5, 6}, "e-big", "INSERT", "Doc", "9", "", "", "2026-12-03T00:00:00Z",
                   std::nullopt, std::nullopt, std::nullopt, nullptr, 20000000, 16777216);
    CHECK(ev->oversize_limit == 16777216);
    CHECK(ev->row_bytes == 20000000);
    const auto& e = ev->envelope.as_object();
    CHECK(e.at("data").is_null());
    CHECK(e.at("oversize").at("bytes") == 20000000);
    CHECK(e.at("oversize").at("limit") == 16777216);
    CHECK(boost::json::parse(ev->envelope_json) == ev->envelope);
    CHECK(ev->footprint < 4096);
    const auto why = oversize_reason(20000000, 16777216);
    CHECK(why.find("event of 20000000 bytes exceeds the per-event limit of 16777216 bytes") !=
          std::string::npos);
    CHECK(why.find("listener.max_event_bytes") != std::string::npos);
  }
}
