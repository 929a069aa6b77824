// Building a runtime snapshot from a validated config.
#include "runtime.hpp"

#include <fstream>
#include <sstream>

#include "metrics_http.hpp"

namespace pgw::proxy {

pool::ConnectRequest connect_request(const Runtime& rt, const config::DatabaseSettings& db,
                                     const std::string& server_user) {
  pool::ConnectRequest req;
  req.host = db.host;
  req.port = db.port;
  req.startup = {{"user", server_user}, {"database", db.dbname}};
  req.credentials.user = server_user;
  if (!db.password.empty()) {
    req.credentials.password = db.password;
  } else if (const protocol::UserSecret* s = rt.auth->find(server_user)) {
    if (const auto* plain = std::get_if<protocol::PlainSecret>(s)) req.credentials.password = plain->password;
    if (const auto* md5 = std::get_if<protocol::Md5Secret>(s)) req.credentials.md5_secret = md5->secret;
  }
  req.tls_context = rt.server_tls;
  req.policy = rt.server_policy;
  req.timeout = db.pool.server_connect_timeout;
  req.max_message = rt.config->proxy.max_packet_size;
  return req;
}

pool::PoolLimits pool_limits(const config::PoolSettings& p) {
  pool::PoolLimits limits;
  limits.default_size = p.default_size;
  limits.min_size = p.min_size;
  limits.reserve_size = p.reserve_size;
  limits.reserve_timeout = p.reserve_timeout;
  limits.server_lifetime = p.server_lifetime;
  limits.server_idle_timeout = p.server_idle_timeout;
  limits.server_check_delay = p.server_check_delay;
  limits.query_wait_timeout = p.query_wait_timeout;
  return limits;
}

RuntimeResult build_runtime(std::shared_ptr<const config::Config> cfg) {
  RuntimeResult r;
  auto rt = std::make_shared<Runtime>();
  auto report = [&](const std::vector<tls::ContextProblem>& problems) {
    for (const auto& p : problems)
      r.diagnostics.push_back({cfg->position_of(p.key), p.message});
  };
  auto client = tls::make_client_leg_context(cfg->client_tls);
  report(client.problems);
  rt->client_tls = client.context;
  auto server = tls::make_server_leg_context(cfg->server_tls);
  report(server.problems);
  rt->server_tls = server.context;
  rt->server_policy = tls::server_leg_policy(cfg->server_tls);
  rt->auth_salt_key = AuthStore::salt_key(cfg->client_tls);
  auto auth = cfg->auth.file.empty() ? AuthStore::parse("", {}, rt->auth_salt_key)
                                     : AuthStore::load(cfg->auth.file, rt->auth_salt_key);
  if (!auth.diagnostics.empty() && auth.diagnostics.front().message == "cannot read the auth file") {
    r.diagnostics.push_back(
        {cfg->position_of("auth.file"), "cannot read the auth file " + cfg->auth.file.string()});
  } else {
    r.diagnostics.insert(r.diagnostics.end(), auth.diagnostics.begin(), auth.diagnostics.end());
  }
  rt->auth = auth.store;
  rt->access = cfg->access;
  if (!cfg->auth.hba_file.empty()) {
    std::ifstream in(cfg->auth.hba_file, std::ios::binary);
    if (!in) {
      r.diagnostics.push_back(
          {cfg->position_of("auth.hba_file"), "cannot read the hba file " + cfg->auth.hba_file.string()});
    } else {
      std::stringstream text;
      text << in.rdbuf();
      auto hba = config::parse_hba(text.str(), cfg->auth.hba_file);
      r.diagnostics.insert(r.diagnostics.end(), hba.diagnostics.begin(), hba.diagnostics.end());
      rt->access = std::make_shared<const std::vector<config::AccessRule>>(std::move(hba.rules));
    }
  }
  const auto& px = cfg->proxy;
  if (px.metrics_tls_cert.empty() != px.metrics_tls_key.empty()) {
    r.diagnostics.push_back(
        {cfg->position_of(px.metrics_tls_cert.empty() ? "proxy.metrics_tls_key" : "proxy.metrics_tls_cert"),
         "proxy.metrics_tls_cert and proxy.metrics_tls_key go together"});
  } else if (!px.metrics_tls_cert.empty()) {
    auto metrics = make_metrics_tls_context(px.metrics_tls_cert, px.metrics_tls_key);
    for (const auto& p : metrics.problems)
      r.diagnostics.push_back({cfg->position_of("proxy.metrics_tls_" + p.key), p.message});
    rt->metrics_tls = metrics.context;
  }
  for (const auto& c : cfg->proxy.proxy_protocol_from) {
    if (auto cidr = config::Cidr::parse(c)) rt->proxy_protocol_from.push_back(*cidr);
  }
  rt->config = std::move(cfg);
  if (r.diagnostics.empty()) r.runtime = std::move(rt);
  return r;
}

}  // namespace pgw::proxy
