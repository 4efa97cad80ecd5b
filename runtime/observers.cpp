#include "runtime/observers.hpp"

#include <algorithm>

namespace fraiseql {

struct compiled_observer {
  observer_config cfg;
};

namespace {

std::string index_key(const std::string& type, const std::string& entity) {
  std::string k;
  k.reserve(type.size() + 1 + entity.size());
  k += type;
  k += '\x1f';
  k += entity;
  return k;
}

}  // namespace

observer_registry::~observer_registry() = default;

std::shared_ptr<const observer_registry>
observer_registry::build(const std::vector<observer_config>& obs, std::vector<std::string>& errors) {
  std::shared_ptr<observer_registry> reg{new observer_registry()};
  for (uint32_t i = 0; i < obs.size(); ++i) {
    auto c = std::make_unique<compiled_observer>();
    c->cfg = obs[i];
    if (!c->cfg.condition.empty())
      errors.push_back("observer '" + c->cfg.name + "': condition '" + c->cfg.condition
                       + "': conditions need the expression engine, not in this build");
    reg->index_[index_key(c->cfg.event_type, c->cfg.entity)].push_back(i);
    reg->observers_.push_back(std::move(c));
  }
  return reg;
}

match_result observer_registry::match(const event& ev) const {
  match_result out;
  auto collect = [&](const std::string& type, const std::string& entity) {
    auto it = index_.find(index_key(type, entity));
    if (it != index_.end())
      out.observers.insert(out.observers.end(), it->second.begin(), it->second.end());
  };
  collect(ev.event_type, ev.entity_type);
  collect(ev.event_type, "*");
  collect("*", ev.entity_type);
  collect("*", "*");
  std::sort(out.observers.begin(), out.observers.end());
  out.observers.erase(std::unique(out.observers.begin(), out.observers.end()),
                      out.observers.end());
  return out;
}

size_t observer_registry::size() const {
  return observers_.size();
}

const observer_config& observer_registry::config(uint32_t index) const {
  return observers_.at(index)->cfg;
}

}  // namespace fraiseql
