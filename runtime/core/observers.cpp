#include "runtime/core/observers.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace fraiseql {

struct compiled_observer {
  observer_config cfg;
  std::optional<expr::expression> condition;
  std::vector<action_templates> actions;
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

/// RFC 6901 escaping of one reference token.
std::string pointer_token(const std::string& k) {
  std::string out;
  for (char c : k) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

/// Every string leaf of `v` holding a {{ }} hole, compiled, by JSON pointer.
void collect_param_templates(const boost::json::value& v, const std::string& ptr,
                             const std::string& where,
                             std::vector<std::pair<std::string, expr::template_>>& out,
                             std::vector<std::string>& errors) {
  if (const auto* o = v.if_object()) {
    for (const auto& kv : *o)
      collect_param_templates(kv.value(), ptr + "/" + pointer_token(std::string(kv.key())), where,
                              out, errors);
  } else if (const auto* a = v.if_array()) {
    for (size_t i = 0; i < a->size(); ++i)
      collect_param_templates((*a)[i], ptr + "/" + std::to_string(i), where, out, errors);
  } else if (const auto* s = v.if_string()) {
    auto r = expr::template_::compile(*s);
    if (!r)
      errors.push_back(where + ": params" + ptr + ": " + r.err().to_string());
    else if (!r->is_constant())
      out.emplace_back(ptr, std::move(*r));
  }
}

}  // namespace

observer_registry::~observer_registry() = default;

std::shared_ptr<const observer_registry> observer_registry::build(
    const std::vector<observer_config>& obs, std::vector<std::string>& errors) {
  std::shared_ptr<observer_registry> reg{new observer_registry()};
  for (uint32_t i = 0; i < obs.size(); ++i) {
    auto c = std::make_unique<compiled_observer>();
    c->cfg = obs[i];
    const std::string who = "observer '" + c->cfg.name + "'";
    if (!c->cfg.condition.empty()) {
      auto e = expr::expression::compile(c->cfg.condition);
      if (e)
        c->condition = std::move(*e);
      else
        errors.push_back(who + ": condition: " + e.err().to_string());
    }
    for (size_t a = 0; a < c->cfg.actions.size(); ++a) {
      const auto& ac = c->cfg.actions[a];
      const std::string where = who + " action " + std::to_string(a) + " (" + ac.type + ")";
      action_templates t;
      auto compile = [&](const std::string& text,
                         const char* part) -> std::optional<expr::template_> {
        auto r = expr::template_::compile(text);
        if (!r) {
          errors.push_back(where + ": " + part + ": " + r.err().to_string());
          return std::nullopt;
        }
        // Literal text needs no rendering per event.
        if (r->is_constant()) return std::nullopt;
        return std::move(*r);
      };
      // A JSON body: one {{ expression }} or JSON with {{ }} holes.
      auto compile_body = [&](const std::string& text) {
        if (text.empty()) return;
        auto r = expr::template_::compile(text);
        if (!r) {
          errors.push_back(where + ": body_template: " + r.err().to_string());
        } else if (!r->is_single_expression()) {
          if (auto je = r->json_error())
            errors.push_back(where +
                             ": body_template must be one {{ expression }} or JSON with "
                             "{{ }} holes: " +
                             je->to_string());
          else
            t.body = std::move(*r);
        } else {
          t.body = std::move(*r);
        }
      };
      if (ac.webhook) {
        t.url = compile(ac.webhook->url, "url");
        for (const auto& [k, v] : ac.webhook->headers)
          if (auto h = compile(v, ("header " + k).c_str())) t.headers.emplace(k, std::move(*h));
        compile_body(ac.webhook->body_template);
      }
      if (ac.nats) {
        t.subject = compile(ac.nats->subject, "subject");
        compile_body(ac.nats->body_template);
      }
      if (ac.log && !ac.log->message.empty()) t.message = compile(ac.log->message, "message");
      if (ac.slack) t.message = compile(ac.slack->message, "message");
      if (ac.email) {
        t.subject = compile(ac.email->subject, "subject");
        t.text = compile(ac.email->body, "body");
      }
      if (ac.database) {
        boost::json::error_code ec;
        t.params = boost::json::parse(ac.database->params_json, ec);
        if (ec)
          errors.push_back(where + ": params: " + ec.message());
        else
          collect_param_templates(t.params, "", where, t.param_templates, errors);
      }
      c->actions.push_back(std::move(t));
    }
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
  out.observers.erase(std::unique(out.observers.begin(), out.observers.end()), out.observers.end());
  // Conditions: an evaluation error means "does not fire" and is reported.
  auto keep = out.observers.begin();
  for (auto idx : out.observers) {
    const auto& c = *observers_[idx];
    if (c.condition) {
      auto r = expr::evaluate_condition(*c.condition, ev.envelope);
      if (!r) {
        out.errors.push_back({idx, "observer '" + c.cfg.name + "': " + r.err().to_string()});
        continue;
      }
      if (!*r) continue;
    }
    *keep++ = idx;
  }
  out.observers.erase(keep, out.observers.end());
  return out;
}

std::vector<match_explanation> observer_registry::explain(const event& ev) const {
  std::vector<match_explanation> out;
  for (uint32_t i = 0; i < observers_.size(); ++i) {
    const auto& c = *observers_[i];
    match_explanation m;
    m.observer = i;
    m.filter_matches = (c.cfg.event_type == "*" || c.cfg.event_type == ev.event_type) &&
                       (c.cfg.entity == "*" || c.cfg.entity == ev.entity_type);
    if (!m.filter_matches) {
      m.verdict = "filter does not match";
    } else if (!c.condition) {
      m.verdict = "fires";
    } else {
      auto r = expr::evaluate_condition(*c.condition, ev.envelope);
      if (!r) {
        m.verdict = "condition error";
        m.condition_detail = r.err().to_string();
      } else {
        m.verdict = *r ? "fires" : "condition false";
        m.condition_detail = *r ? "true" : "false";
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::optional<std::string> observer_registry::render_webhook(uint32_t observer, uint32_t action,
                                                             const event& ev,
                                                             rendered_webhook& out) const {
  const auto& c = *observers_.at(observer);
  const auto& w = *c.cfg.actions.at(action).webhook;
  const auto& t = c.actions.at(action);
  if (t.url) {
    auto r = t.url->render_text(ev.envelope);
    if (!r) return "url template: " + r.err().to_string();
    out.url = std::move(*r);
  } else {
    out.url = w.url;
  }
  if (t.body) {
    if (t.body->is_single_expression()) {
      auto r = t.body->render_value(ev.envelope);
      if (!r) return "body_template: " + r.err().to_string();
      out.body = boost::json::serialize(*r);
    } else {
      auto r = t.body->render_json(ev.envelope);
      if (!r) return "body_template: " + r.err().to_string();
      out.body = std::move(*r);
    }
  } else {
    out.body = ev.envelope_json;
  }
  for (const auto& [k, v] : w.headers) {
    auto it = t.headers.find(k);
    if (it == t.headers.end()) {
      out.headers.push_back(k + ": " + v);
      continue;
    }
    auto r = it->second.render_text(ev.envelope);
    if (!r) return "header " + k + ": " + r.err().to_string();
    // A rendered value must not smuggle extra header lines.
    std::string value = std::move(*r);
    value.erase(std::remove_if(value.begin(), value.end(),
                               [](char ch) { return ch == '\r' || ch == '\n'; }),
                value.end());
    out.headers.push_back(k + ": " + value);
  }
  return std::nullopt;
}

std::optional<std::string> observer_registry::render_nats(uint32_t observer, uint32_t action,
                                                          const event& ev, std::string& subject,
                                                          std::string& payload) const {
  const auto& c = *observers_.at(observer);
  const auto& n = *c.cfg.actions.at(action).nats;
  const auto& t = c.actions.at(action);
  if (t.subject) {
    auto r = t.subject->render_text(ev.envelope);
    if (!r) return "subject template: " + r.err().to_string();
    subject = std::move(*r);
    // A rendered value may hold anything: it must still be one plain subject.
    if (auto why = check_nats_subject(subject))
      return "subject template rendered '" + subject + "', which " + *why;
  } else {
    subject = n.subject;
  }
  if (t.body) {
    if (t.body->is_single_expression()) {
      auto r = t.body->render_value(ev.envelope);
      if (!r) return "body_template: " + r.err().to_string();
      payload = boost::json::serialize(*r);
    } else {
      auto r = t.body->render_json(ev.envelope);
      if (!r) return "body_template: " + r.err().to_string();
      payload = std::move(*r);
    }
  } else {
    payload = ev.envelope_json;
  }
  return std::nullopt;
}

std::string observer_registry::render_log_message(uint32_t observer, uint32_t action,
                                                  const event& ev) const {
  const auto& c = *observers_.at(observer);
  const auto& t = c.actions.at(action);
  if (t.message) {
    auto r = t.message->render_text(ev.envelope);
    return r ? std::move(*r) : "<message template failed: " + r.err().to_string() + ">";
  }
  const auto& msg = c.cfg.actions.at(action).log->message;
  return msg.empty() ? ev.envelope_json : msg;
}

std::optional<std::string> observer_registry::render_slack(uint32_t observer, uint32_t action,
                                                           const event& ev,
                                                           std::string& payload) const {
  const auto& c = *observers_.at(observer);
  const auto& s = *c.cfg.actions.at(action).slack;
  const auto& t = c.actions.at(action);
  boost::json::object o;
  if (t.message) {
    auto r = t.message->render_text(ev.envelope);
    if (!r) return "message template: " + r.err().to_string();
    o["text"] = *r;
  } else {
    o["text"] = s.message;
  }
  if (!s.channel.empty()) o["channel"] = s.channel;
  if (!s.username.empty()) o["username"] = s.username;
  if (!s.icon_emoji.empty()) o["icon_emoji"] = s.icon_emoji;
  payload = boost::json::serialize(o);
  return std::nullopt;
}

std::optional<std::string> observer_registry::render_email(uint32_t observer, uint32_t action,
                                                           const event& ev, std::string& subject,
                                                           std::string& body) const {
  const auto& c = *observers_.at(observer);
  const auto& e = *c.cfg.actions.at(action).email;
  const auto& t = c.actions.at(action);
  if (t.subject) {
    auto r = t.subject->render_text(ev.envelope);
    if (!r) return "subject template: " + r.err().to_string();
    subject = std::move(*r);
  } else {
    subject = e.subject;
  }
  if (t.text) {
    auto r = t.text->render_text(ev.envelope);
    if (!r) return "body template: " + r.err().to_string();
    body = std::move(*r);
  } else {
    body = e.body.empty() ? ev.envelope_json : e.body;
  }
  return std::nullopt;
}

std::optional<std::string> observer_registry::render_database_params(uint32_t observer,
                                                                     uint32_t action,
                                                                     const event& ev,
                                                                     std::string& params) const {
  const auto& t = observers_.at(observer)->actions.at(action);
  if (t.param_templates.empty()) {
    params = boost::json::serialize(t.params);
    return std::nullopt;
  }
  boost::json::value v = t.params;
  for (const auto& [ptr, tpl] : t.param_templates) {
    auto r = tpl.render_value(ev.envelope);
    if (!r) return "params" + ptr + " template: " + r.err().to_string();
    boost::json::error_code ec;
    if (auto* leaf = v.find_pointer(ptr, ec)) *leaf = std::move(*r);
  }
  params = boost::json::serialize(v);
  return std::nullopt;
}

size_t observer_registry::size() const {
  return observers_.size();
}

const observer_config& observer_registry::config(uint32_t index) const {
  return observers_.at(index)->cfg;
}

}  // namespace fraiseql
