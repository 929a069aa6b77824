// Building a runtime snapshot from a validated config.
#include "runtime.hpp"

namespace pgw::proxy {

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
  auto auth = AuthStore::load(cfg->auth.file);
  if (!auth.diagnostics.empty() && auth.diagnostics.front().message == "cannot read the auth file") {
    r.diagnostics.push_back(
        {cfg->position_of("auth.file"), "cannot read the auth file " + cfg->auth.file.string()});
  } else {
    r.diagnostics.insert(r.diagnostics.end(), auth.diagnostics.begin(), auth.diagnostics.end());
  }
  rt->auth = auth.store;
  rt->config = std::move(cfg);
  if (r.diagnostics.empty()) r.runtime = std::move(rt);
  return r;
}

}  // namespace pgw::proxy
