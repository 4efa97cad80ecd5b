// expr_bench: how fast a compiled observer condition evaluates.
//
// Compiles `data.status == 'shipped' && data.total > `100`` once and evaluates it in a tight
// loop on one core against a ~1 KB event envelope, with each entry point:
//   - evaluate_condition: the observer path (truthiness only, copies no JSON);
//   - expression::evaluate: plain evaluation returning a JSON value (a copy at the boundary).
// Also times compilation and a webhook body template, for reference. Prints the figures;
// it asserts nothing (benchmarks are never timed tests).

#include "runtime/expr/jmespath.hpp"
#include "runtime/expr/template.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

// Count heap allocations (this benchmark is single-threaded) to show that the condition path
// allocates nothing.
namespace {
std::size_t allocations = 0;
}

void* operator new(std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using clock_type = std::chrono::steady_clock;
namespace json = boost::json;
namespace expr = fraiseql::expr;

const char* const event_text = R"json({
  "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
  "event_type": "UPDATE",
  "entity_type": "Order",
  "entity_id": "42",
  "data": {
    "id": 42, "status": "shipped", "total": 149.9, "currency": "EUR",
    "customer": {"id": 1001, "email": "jane.doe@example.com", "name": "Jane Doe", "vip": true},
    "shipping_address": {"line1": "12 rue de la Paix", "city": "Paris", "zip": "75002",
                         "country": "FR"},
    "items": [
      {"sku": "SKU-0001", "name": "Espresso cups (set of 4)", "qty": 2, "price": 24.5},
      {"sku": "SKU-0042", "name": "Grinder", "qty": 1, "price": 89.0},
      {"sku": "SKU-0107", "name": "Coffee beans 1kg", "qty": 1, "price": 11.9}
    ],
    "carrier": "colissimo", "tracking": "6A12345678901", "notes": null,
    "created_at": "2026-01-10T09:12:44Z", "updated_at": "2026-01-12T16:03:10Z"
  },
  "old": {"id": 42, "status": "paid", "total": 149.9, "carrier": null, "tracking": null},
  "changes": {"status": {"old": "paid", "new": "shipped"},
              "carrier": {"old": null, "new": "colissimo"}},
  "timestamp": "2026-01-12T16:03:10.123456Z",
  "tenant_id": null, "user_id": null, "trace_id": null
})json";

template <class F>
double per_second(F&& f, double seconds, long& sink) {
  // Warm up, then run batches until the time budget is spent.
  for (int i = 0; i < 10000; ++i) sink += f();
  long iterations = 0;
  const auto start = clock_type::now();
  const auto budget = std::chrono::duration<double>(seconds);
  auto now = start;
  while (now - start < budget) {
    for (int i = 0; i < 10000; ++i) sink += f();
    iterations += 10000;
    now = clock_type::now();
  }
  return static_cast<double>(iterations) / std::chrono::duration<double>(now - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  const json::value event = json::parse(event_text);
  const std::string text = "data.status == 'shipped' && data.total > `100`";
  auto compiled = expr::expression::compile(text);
  if (!compiled) {
    std::fprintf(stderr, "compile failed: %s\n", compiled.err().to_string().c_str());
    return 1;
  }
  const expr::expression e = *compiled;
  auto check = expr::evaluate_condition(e, event);
  if (!check || !*check) {
    std::fprintf(stderr, "the condition should be true on the bench event\n");
    return 1;
  }
  long sink = 0;
  std::printf("expression: %s\n", text.c_str());
  std::printf("event: %zu bytes of compact JSON\n", json::serialize(event).size());

  const double cond = per_second(
      [&] {
        auto r = expr::evaluate_condition(e, event);
        return r.ok() && *r ? 1L : 0L;
      },
      seconds, sink);
  std::printf("evaluate_condition (compiled AST, no JSON copy): %.2f million evaluations/s\n",
              cond / 1e6);
  const std::size_t before = allocations;
  for (int i = 0; i < 1000; ++i) sink += expr::evaluate_condition(e, event).value_or(false);
  std::printf("heap allocations per evaluate_condition: %.3f\n",
              static_cast<double>(allocations - before) / 1000.0);

  const double eval = per_second(
      [&] {
        auto r = e.evaluate(event);
        return r.ok() && r->is_bool() && r->get_bool() ? 1L : 0L;
      },
      seconds, sink);
  std::printf("expression::evaluate (returns a json::value): %.2f million evaluations/s\n",
              eval / 1e6);

  const double comp =
      per_second([&] { return expr::expression::compile(text).ok() ? 1L : 0L; }, seconds / 2, sink);
  std::printf("expression::compile: %.0f compilations/s\n", comp);

  auto body = expr::template_::compile(
      R"({"order": {{ data.id }}, "status": "{{ data.status }}", "customer": {{ data.customer }}})");
  if (body) {
    const double tpl = per_second(
        [&] {
          auto r = body->render_json(event);
          return r.ok() ? static_cast<long>(r->size()) : 0L;
        },
        seconds / 2, sink);
    std::printf("template_::render_json (3 holes): %.2f million renders/s\n", tpl / 1e6);
  }
  std::printf("(checksum %ld)\n", sink);
  return 0;
}
