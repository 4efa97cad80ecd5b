#include "runtime/core/health.hpp"

#include <cstdio>

namespace fraiseql {

health_state::health_state(std::chrono::milliseconds max_checkpoint_age)
    : max_age_s_(std::chrono::duration<double>(max_checkpoint_age).count()) {}

void health_state::waiting(const std::string& why) {
  std::lock_guard<std::mutex> l(mu_);
  leading_ = false;
  connected_ = false;
  waiting_for_ = why;
}

void health_state::leading() {
  std::lock_guard<std::mutex> l(mu_);
  leading_ = true;
  waiting_for_.clear();
}

void health_state::listener_connected(bool connected) {
  std::lock_guard<std::mutex> l(mu_);
  connected_ = connected;
}

void health_state::without_listener() {
  std::lock_guard<std::mutex> l(mu_);
  needs_listener_ = false;
}

void health_state::checkpoint_age(double seconds) {
  std::lock_guard<std::mutex> l(mu_);
  age_s_ = seconds;
}

void health_state::stopping() {
  std::lock_guard<std::mutex> l(mu_);
  stopping_ = true;
}

void health_state::failed(const std::string& what) {
  std::lock_guard<std::mutex> l(mu_);
  failed_ = what;
}

health_verdict health_state::live() const {
  std::lock_guard<std::mutex> l(mu_);
  if (!failed_.empty()) return {false, "actor failed: " + failed_};
  if (stopping_) return {false, "stopping"};
  return {true, "ok"};
}

health_verdict health_state::ready() const {
  std::lock_guard<std::mutex> l(mu_);
  if (!failed_.empty()) return {false, "actor failed: " + failed_};
  if (stopping_) return {false, "stopping"};
  if (!leading_) return {false, waiting_for_};
  if (needs_listener_ && !connected_)
    return {false, "database unreachable: the listener cannot read the change log"};
  if (max_age_s_ > 0 && age_s_ > max_age_s_) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "checkpoint stale: not saved for %.0f s (limit %.0f s)", age_s_,
                  max_age_s_);
    return {false, buf};
  }
  return {true, "ok"};
}

}  // namespace fraiseql
