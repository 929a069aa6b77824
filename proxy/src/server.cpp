// Workers, listeners, signals: accept on worker 0 into a round-robin worker, reload on SIGHUP, staged
// shutdown.
#include "server.hpp"

#include <openssl/rand.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <csignal>
#include <stdexcept>

#include "client_session.hpp"
#include "log.hpp"

namespace pgw::proxy {

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// co_spawn completion: a coroutine that escapes with an exception is a bug worth a loud line, never silence.
void log_exception(const std::exception_ptr& e, const char* what) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("{} ended with an exception: {}", what, ex.what());
  } catch (...) {
    spdlog::error("{} ended with an unknown exception", what);
  }
}
}  // namespace

void Worker::start() {
  thread_ = std::thread([this] { io_.run(); });
}

void Worker::stop() {
  guard_.reset();
  io_.stop();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::start_janitor() {
  janitor_ = std::make_unique<asio::steady_timer>(io_);
  janitor_step();
}

void Worker::janitor_step() {
  janitor_->expires_after(std::chrono::seconds(1));
  janitor_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    auto now = pool::Clock::now();
    std::vector<ClientSession*> sessions(sessions_.begin(), sessions_.end());
    for (ClientSession* s : sessions)
      s->check_timeouts(now);
    janitor_step();
  });
}

Server::Server(std::shared_ptr<const Runtime> runtime) : runtime_(std::move(runtime)) {
  unsigned n = runtime_->config->proxy.workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i)
    workers_.push_back(std::make_unique<Worker>(i));
  std::vector<asio::any_io_executor> executors;
  for (auto& w : workers_)
    executors.push_back(w->io().get_executor());
  pools_ = std::make_unique<pool::PoolManager>(std::move(executors));
  audit_settings_ = runtime_->config->audit;
  if (audit_settings_.enabled) {
    audit::AuditLogOptions options;
    options.alarm = [](std::string_view message) { spdlog::error("audit log: {}", message); };
    audit_ = std::make_unique<audit::AuditLog>(audit_settings_, std::move(options));
    spdlog::info("audit log: instance \"{}\", statements = \"{}\", fsync = \"{}\"", audit_->instance(),
                 config::to_string(audit_settings_.statements), config::to_string(audit_settings_.fsync));
  }
  unsigned char seed[32];
  RAND_bytes(seed, sizeof seed);
  mock_seed_.assign(reinterpret_cast<const char*>(seed), sizeof seed);
  std::uint32_t prefix = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&prefix), sizeof prefix);
  id_prefix_ = fmt::format("{:08x}", prefix);
}

Server::~Server() {
  try {
    stop_all();
    for (auto& w : workers_)
      w->join();
    // Objects bound to an io_context go before it; sessions still parked in a stopped io_context are
    // destroyed with it and reach back into cancels_ and clients_, which outlive workers_ here.
    acceptors_.clear();
    signals_.reset();
    shutdown_timer_.reset();
    pools_.reset();
    // Its last durable callbacks post to the workers' io_contexts, which must still exist (threads joined).
    audit_.reset();
    workers_.clear();
  } catch (const std::exception& e) {
    spdlog::error("stopping: {}", e.what());
  }
}

std::shared_ptr<const Runtime> Server::runtime() const {
  std::lock_guard lock(runtime_mutex_);
  return runtime_;
}

std::string Server::next_session_id() {
  return id_prefix_ + "-" + std::to_string(session_counter_.fetch_add(1, std::memory_order_relaxed) + 1);
}

bool Server::try_admit_client() {
  int limit = static_cast<int>(runtime()->config->proxy.max_client_conn);
  int now = clients_.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (now > limit) {
    clients_.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  return true;
}

void Server::client_left() {
  clients_.fetch_sub(1, std::memory_order_acq_rel);
  if (draining() && !stopped_.load(std::memory_order_acquire)) {
    asio::post(workers_[0]->io(), [this] { maybe_finish(); });
  }
}

int Server::run() {
  auto& io0 = workers_[0]->io();
  const auto& cfg = *runtime_->config;
  for (const auto& l : cfg.proxy.listen) {
    asio::ip::tcp::resolver resolver(io0);
    boost::system::error_code ec;
    auto results = resolver.resolve(l.host, std::to_string(l.port), asio::ip::tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      throw std::runtime_error("cannot resolve listen address " + l.to_string() + ": " + ec.message());
    }
    for (const auto& entry : results) {
      auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(io0);
      auto ep = entry.endpoint();
      acceptor->open(ep.protocol(), ec);
      if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec && ep.address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
      if (!ec) acceptor->bind(ep, ec);
      if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
      if (ec) throw std::runtime_error("cannot listen on " + l.to_string() + ": " + ec.message());
      spdlog::info("listening on {}", l.to_string());
      acceptors_.push_back(std::move(acceptor));
    }
  }
  if (!runtime_->access) {
    spdlog::warn("no [[access]] rules and no auth.hba_file: every client address is allowed");
  }
  if (cfg.auth.type == config::AuthMethod::trust) {
    spdlog::warn("auth.type = \"trust\": every client is let in as the user it names, without a password");
  }
  for (auto& a : acceptors_) {
    asio::co_spawn(io0, accept_loop(*a),
                   [](const std::exception_ptr& e) { log_exception(e, "accept loop"); });
  }
  signals_ = std::make_unique<asio::signal_set>(io0, SIGINT, SIGTERM, SIGHUP);
  auto wait_signal = [this](auto&& self) -> void {
    signals_->async_wait([this, self](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      on_signal(sig);
      if (!stopped_) self(self);
    });
  };
  wait_signal(wait_signal);
  spdlog::info("pgwarden {} started with {} worker threads", PGW_VERSION, workers_.size());
  pools_->start_janitor(std::chrono::seconds(1));
  for (auto& w : workers_)
    asio::post(w->io(), [worker = w.get()] { worker->start_janitor(); });
  for (auto& w : workers_)
    w->start();
  for (auto& w : workers_)
    w->join();
  spdlog::info("pgwarden stopped");
  return 0;
}

namespace {

config::IpAddress ip_of(const asio::ip::address& a) {
  config::IpAddress ip;
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), ip.bytes.begin());
  } else {
    ip.family = config::IpAddress::Family::inet6;
    auto b = a.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), ip.bytes.begin());
  }
  return ip;
}

// Refused on its address alone: no session and no TLS. The first packet (SSLRequest or startup) is read and
// answered with an ErrorResponse, so the SQLSTATE is on the wire (libpq 15.8+ does not show the text of an
// answer to SSLRequest), then the connection closes. Bounded by client_handshake_timeout.
asio::awaitable<void> refuse_before_tls(tls::tcp::socket socket, std::string sqlstate, std::string message,
                                        std::chrono::milliseconds timeout) {
  auto sock = std::make_shared<tls::tcp::socket>(std::move(socket));
  pool::Deadline deadline(sock->get_executor());
  deadline.arm(timeout, [weak = std::weak_ptr(sock)] {
    if (auto s = weak.lock()) {
      boost::system::error_code ignored;
      s->close(ignored);
    }
  });
  std::array<std::uint8_t, 512> scratch{};
  auto [hec, hn] = co_await asio::async_read(*sock, asio::buffer(scratch.data(), 4), use_tuple);
  if (hec) co_return;
  std::uint32_t length = protocol::load_u32(scratch.data());
  if (length < 8 || length > protocol::max_startup_packet_length) co_return;  // not PostgreSQL: just close
  // The rest of the packet (SSLRequest code, or a whole startup packet) is read and dropped, so that the
  // answer is not lost to a reset caused by unread bytes.
  for (std::size_t left = length - 4; left > 0;) {
    auto [ec, n] = co_await sock->async_read_some(
        asio::buffer(scratch.data(), std::min(left, scratch.size())), use_tuple);
    if (ec) co_return;
    left -= n;
  }
  std::vector<std::uint8_t> out;
  protocol::Encoder e(out);
  protocol::encode::error_response(e, protocol::Notice{"FATAL", sqlstate, message, {}, {}});
  co_await asio::async_write(*sock, asio::buffer(out), use_tuple);
  deadline.cancel();
  boost::system::error_code ignored;
  sock->shutdown(tls::tcp::socket::shutdown_both, ignored);
  sock->close(ignored);
}

}  // namespace

Server::AddressVerdict Server::admit_address(const config::IpAddress& address, const Runtime& rt) {
  const auto& p = rt.config->proxy;
  AddressVerdict v;
  if (rt.access && config::early_decision(*rt.access, address) == config::EarlyDecision::deny) {
    v.admitted = false;
    v.sqlstate = "28000";
    v.message = "no access rule allows connections from host \"" + canonical(address).to_string() + "\"";
    v.reason = "address refused by the access rules";
    return v;
  }
  if (!address_limits_.take_token(address, p.client_connect_rate, AddressLimits::Clock::now())) {
    v.admitted = false;
    v.sqlstate = "53300";
    v.message = "too many new connections from this address: client_connect_rate (" +
                std::to_string(p.client_connect_rate) + " per second) is exceeded";
    v.reason = "client_connect_rate exceeded";
  }
  return v;
}

void Server::record_refusal(const std::string& address, std::uint16_t port, const AddressVerdict& verdict) {
  spdlog::info("client={}:{} refused ({}): {}", address, port, verdict.sqlstate, verdict.reason);
  if (!audit_) return;
  audit::Record r;
  r.event = audit::Event::refused;
  r.session = next_session_id();
  r.client_addr = address;
  r.client_port = port;
  r.sqlstate = verdict.sqlstate;
  r.reason = verdict.reason;
  audit_->append(std::move(r));
}

asio::awaitable<void> Server::accept_loop(asio::ip::tcp::acceptor& acceptor) {
  for (;;) {
    Worker& w = *workers_[next_worker_.fetch_add(1, std::memory_order_relaxed) % workers_.size()];
    auto [ec, socket] = co_await acceptor.async_accept(w.io(), use_tuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // Out of descriptors and the like: say so, wait a little, keep serving (never spin).
      spdlog::error("accept failed: {}", ec.message());
      asio::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await t.async_wait(use_tuple);
      continue;
    }
    boost::system::error_code rec;
    auto remote = socket.remote_endpoint(rec);
    if (rec) continue;  // already gone
    auto rt = runtime();
    config::IpAddress address = ip_of(remote.address());
    bool via_proxy = std::any_of(rt->proxy_protocol_from.begin(), rt->proxy_protocol_from.end(),
                                 [&](const config::Cidr& c) { return c.contains(address); });
    if (!via_proxy) {
      // A load balancer's address says nothing about the client: its connections are judged after the header.
      AddressVerdict verdict = admit_address(address, *rt);
      if (!verdict.admitted) {
        record_refusal(remote.address().to_string(), remote.port(), verdict);
        asio::co_spawn(w.io(),
                       refuse_before_tls(std::move(socket), verdict.sqlstate, verdict.message,
                                         rt->config->proxy.client_handshake_timeout),
                       asio::detached);
        continue;
      }
    }
    auto session = std::make_shared<ClientSession>(*this, w, std::move(socket), via_proxy);
    asio::co_spawn(w.io(), ClientSession::run(std::move(session)),
                   [](const std::exception_ptr& e) { log_exception(e, "client session"); });
  }
}

void Server::on_signal(int sig) {
  if (sig == SIGHUP) {
    reload();
    return;
  }
  if (draining()) {
    spdlog::warn("second shutdown signal: exiting now");
    stop_all();
    return;
  }
  begin_shutdown();
}

void Server::reload() {
  auto current = runtime();
  auto loaded = config::load(current->config->path);
  if (!loaded.config) {
    for (const auto& d : loaded.diagnostics)
      spdlog::error("reload refused: {}", d.to_string());
    return;
  }
  auto built = build_runtime(std::make_shared<const config::Config>(std::move(*loaded.config)));
  if (!built.runtime) {
    for (const auto& d : built.diagnostics)
      spdlog::error("reload refused: {}", d.to_string());
    return;
  }
  const auto& old_cfg = *current->config;
  const auto& new_cfg = *built.runtime->config;
  // Keys that only take effect at start are reported, not silently ignored.
  if (old_cfg.proxy.workers != new_cfg.proxy.workers)
    spdlog::warn("reload: proxy.workers changes need a restart");
  std::vector<std::string> a, b;
  for (const auto& l : old_cfg.proxy.listen)
    a.push_back(l.to_string());
  for (const auto& l : new_cfg.proxy.listen)
    b.push_back(l.to_string());
  if (a != b) spdlog::warn("reload: proxy.listen changes need a restart");
  log::set_level(new_cfg.log.level);
  {
    std::lock_guard lock(runtime_mutex_);
    runtime_ = built.runtime;
  }
  auth_query_.clear();  // auth.query or its user may have changed; secrets are looked up afresh
  if (new_cfg.proxy.revoke_on_reload) revoke_refused_clients();
  spdlog::info("reloaded {} (auth file: {} users); new connections use it", new_cfg.path.string(),
               built.runtime->auth->size());
}

void Server::revoke_refused_clients() {
  for (auto& w : workers_) {
    asio::post(w->io(), [worker = w.get(), rt = runtime()] {
      std::vector<ClientSession*> sessions(worker->sessions().begin(), worker->sessions().end());
      for (ClientSession* s : sessions)
        s->revoke_if_refused(*rt);
    });
  }
}

void Server::begin_shutdown() {
  draining_.store(true, std::memory_order_release);
  auto timeout = runtime()->config->proxy.shutdown_timeout;
  spdlog::info("shutting down: {} clients; waiting up to {} ms for open transactions", clients_.load(),
               timeout.count());
  for (auto& w : workers_) {
    asio::post(w->io(), [worker = w.get()] {
      // drain() may end a session, which removes it from the list: iterate over a copy.
      std::vector<ClientSession*> sessions(worker->sessions().begin(), worker->sessions().end());
      for (ClientSession* s : sessions)
        s->drain();
    });
  }
  shutdown_timer_ = std::make_unique<asio::steady_timer>(workers_[0]->io(), timeout);
  shutdown_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    spdlog::warn("shutdown_timeout passed: closing {} remaining clients", clients_.load());
    force_close_all();
  });
  maybe_finish();
}

void Server::force_close_all() {
  for (auto& w : workers_) {
    asio::post(w->io(), [worker = w.get()] {
      std::vector<ClientSession*> sessions(worker->sessions().begin(), worker->sessions().end());
      for (ClientSession* s : sessions)
        s->force_close();
    });
  }
}

void Server::maybe_finish() {
  if (!draining() || clients_.load(std::memory_order_acquire) > 0) return;
  spdlog::info("all clients gone; exiting");
  stop_all();
}

void Server::stop_all() {
  if (stopped_.exchange(true)) return;
  pools_->stop();
  asio::post(workers_[0]->io(), [this] {
    boost::system::error_code ec;
    for (auto& a : acceptors_)
      a->close(ec);
    if (signals_) signals_->cancel(ec);
    if (shutdown_timer_) shutdown_timer_->cancel();
  });
  for (auto& w : workers_)
    w->stop();
}

}  // namespace pgw::proxy
