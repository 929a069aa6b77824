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
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "client_session.hpp"
#include "handover.hpp"
#include "log.hpp"
#include "metrics_http.hpp"
#include "systemd_notify.hpp"

namespace pgw::proxy {

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
}  // namespace

void Worker::start() {
  thread_ = std::thread([this] {
    // "pgw-worker-3" in top -H, perf and /proc/PID/task/*/comm (at most 15 bytes: snprintf cuts the rest).
    std::array<char, 16> name{};
    std::snprintf(name.data(), name.size(), "pgw-worker-%zu", index_);
    pthread_setname_np(pthread_self(), name.data());
    io_.run();
  });
}

Worker::~Worker() {
  janitor_.reset();
  tearing_down_ = true;
  for (ClientSession* s : sessions_)
    s->drop_parked_backend();
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

Server::Server(std::shared_ptr<const Runtime> runtime, handover::Taken taken)
    : runtime_(std::move(runtime)),
      inherited_listeners_(std::move(taken.listeners)),
      held_connections_(std::move(taken.held)) {
  unsigned n = runtime_->config->proxy.workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i)
    workers_.push_back(std::make_unique<Worker>(i));
  std::vector<asio::any_io_executor> executors;
  for (auto& w : workers_)
    executors.push_back(w->io().get_executor());
  pools_ = std::make_unique<pool::PoolManager>(std::move(executors));
  audit_settings_ = runtime_->config->audit;
  cancels_.set_peer_id(runtime_->config->proxy.peer_id);
  if (audit_settings_.enabled) {
    audit::AuditLogOptions options;
    options.alarm = [](std::string_view message) { spdlog::error("audit log: {}", message); };
    audit_ = std::make_unique<audit::AuditLog>(audit_settings_, std::move(options));
    spdlog::info("audit log: instance \"{}\", statements = \"{}\", fsync = \"{}\"", audit_->instance(),
                 config::to_string(audit_settings_.statements), config::to_string(audit_settings_.fsync));
  }
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
    handover_acceptor_.reset();
    metrics_.reset();
    stats_timer_.reset();
    signals_.reset();
    shutdown_timer_.reset();
    pools_.reset();
    // Its last durable callbacks post to the workers' io_contexts, which must still exist (threads joined).
    audit_.reset();
    // The next process waits for this end to close: its audit log opens after ours is closed.
    handover_peer_.reset();
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

void Server::bind_listeners(const config::Config& cfg) {
  auto& io0 = workers_[0]->io();
  if (!inherited_listeners_.empty()) {
    // Rolling restart: the previous process's sockets, with whatever waits in their backlogs.
    for (int fd : inherited_listeners_) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        throw std::runtime_error("a listener handed over is not a socket");
      }
      auto protocol = ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4();
      auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(io0);
      boost::system::error_code ec;
      acceptor->assign(protocol, fd, ec);
      if (ec) throw std::runtime_error("cannot take over a listener: " + ec.message());
      auto local = acceptor->local_endpoint(ec);
      spdlog::info("took over the listener on {}:{}", local.address().to_string(), local.port());
      acceptors_.push_back(std::move(acceptor));
    }
    inherited_listeners_.clear();
    // The listeners are the previous process's: a proxy.listen changed since is not applied (say so). A host
    // name matches any address on its port.
    std::vector<asio::ip::tcp::endpoint> taken;
    for (const auto& a : acceptors_) {
      boost::system::error_code ec;
      taken.push_back(a->local_endpoint(ec));
    }
    auto matches = [](const config::ListenAddress& l, const asio::ip::tcp::endpoint& e) {
      boost::system::error_code ec;
      auto address = asio::ip::make_address(l.host, ec);
      return l.port == e.port() && (ec || address == e.address());
    };
    bool same = true;
    for (const auto& l : cfg.proxy.listen)
      same = same && std::any_of(taken.begin(), taken.end(), [&](const auto& e) { return matches(l, e); });
    for (const auto& e : taken)
      same = same && std::any_of(cfg.proxy.listen.begin(), cfg.proxy.listen.end(),
                                 [&](const auto& l) { return matches(l, e); });
    if (!same) {
      spdlog::warn(
          "rolling restart: serving on the listeners taken over; proxy.listen differs from them and takes "
          "effect only after a restart without --takeover");
    }
    return;
  }
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
}

void hold_sighup(bool held) noexcept {
  sigset_t hup;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  pthread_sigmask(held ? SIG_BLOCK : SIG_UNBLOCK, &hup, nullptr);
}

int Server::run() {
  auto& io0 = workers_[0]->io();
  const auto& cfg = *runtime_->config;
  bind_listeners(cfg);
  // Connections accepted while the previous process drained: sessions now, with what they already sent.
  for (auto& held : held_connections_) {
    Worker& w = *workers_[next_worker_.fetch_add(1, std::memory_order_relaxed) % workers_.size()];
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(held.fd, reinterpret_cast<sockaddr*>(&ss), &len);
    tls::tcp::socket socket(w.io());
    boost::system::error_code ec;
    socket.assign(ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), held.fd, ec);
    if (ec) {
      ::close(held.fd);
      continue;
    }
    start_session(w, std::move(socket), std::move(held.bytes));
  }
  if (!held_connections_.empty())
    spdlog::info("rolling restart: {} connections held during the handover are served",
                 held_connections_.size());
  held_connections_.clear();
  if (!cfg.proxy.handover_socket.empty()) {
    // main() made sure no live process owns it: what is there is left over from one that exited.
    std::error_code ignored;
    std::filesystem::remove(cfg.proxy.handover_socket, ignored);
    handover_acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(
        io0, asio::local::stream_protocol::endpoint(cfg.proxy.handover_socket.string()));
    ::chmod(cfg.proxy.handover_socket.c_str(), 0600);
    asio::co_spawn(io0, handover_loop(), [](const std::exception_ptr& e) { log::exception(e, "handover"); });
  }
  if (!cfg.proxy.metrics_listen.empty()) {
    config::ListenAddress l;
    (void)config::parse_listen_address(cfg.proxy.metrics_listen, l);  // validated when the config loaded
    asio::ip::tcp::resolver resolver(io0);
    boost::system::error_code ec;
    auto results = resolver.resolve(l.host, std::to_string(l.port), asio::ip::tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      throw std::runtime_error("cannot resolve proxy.metrics_listen " + l.to_string() + ": " + ec.message());
    }
    metrics_ = std::make_unique<MetricsEndpoint>(io0, results.begin()->endpoint(), runtime_->metrics_tls,
                                                 [this] { return render_metrics(); });
    metrics_->start();
    spdlog::info("serving /metrics on {}{}", l.to_string(), runtime_->metrics_tls ? " (HTTPS)" : "");
  }
  if (!runtime_->access) {
    spdlog::warn("no [[access]] rules and no auth.hba_file: every client address is allowed");
  }
  if (cfg.auth.type == config::AuthMethod::trust) {
    spdlog::warn("auth.type = \"trust\": every client is let in as the user it names, without a password");
  }
  for (auto& a : acceptors_) {
    asio::co_spawn(io0, accept_loop(*a),
                   [](const std::exception_ptr& e) { log::exception(e, "accept loop"); });
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
  hold_sighup(false);  // one that came since main() held it is delivered now, as a reload
  spdlog::info("pgwarden {} started with {} worker threads", PGW_VERSION, workers_.size());
  // The listeners are bound and listening: connections made from now on wait in the backlog until the
  // workers start a few lines below, so systemd may start the units ordered after this one.
  systemd::notify_ready(fmt::format("serving with {} worker threads", workers_.size()));
  pools_->start_janitor(std::chrono::seconds(1));
  stats_timer_ = std::make_unique<asio::steady_timer>(io0);
  stats_period_step();
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
  audit_->append(r);
}

asio::awaitable<void> Server::accept_loop(asio::ip::tcp::acceptor& acceptor) {
  // The process exits only once every accept loop has ended: a connection accepted just before the
  // listeners closed still becomes a session and is answered.
  accept_loops_.fetch_add(1, std::memory_order_acq_rel);
  struct Ended {
    Server& server;
    ~Ended() {
      server.accept_loops_.fetch_sub(1, std::memory_order_acq_rel);
      try {
        if (server.draining() && !server.stopped_.load(std::memory_order_acquire)) server.maybe_finish();
      } catch (const std::exception& e) {
        spdlog::error("accept loop: {}", e.what());
      }
    }
  } ended{*this};
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
    start_session(w, std::move(socket), {});
  }
}

void Server::start_session(Worker& w, tls::tcp::socket socket, std::vector<std::uint8_t> initial) {
  boost::system::error_code rec;
  auto remote = socket.remote_endpoint(rec);
  if (rec) return;  // already gone
  auto rt = runtime();
  config::IpAddress address = ip_of(remote.address());
  bool via_proxy = std::any_of(rt->proxy_protocol_from.begin(), rt->proxy_protocol_from.end(),
                               [&](const config::Cidr& c) { return c.contains(address); });
  // A load balancer's address says nothing about the client: its connections are judged after the header.
  // A connection held during a rolling restart has had its first bytes read: the access rules judge it at
  // login instead.
  if (!via_proxy && initial.empty()) {
    AddressVerdict verdict = admit_address(address, *rt);
    if (!verdict.admitted) {
      record_refusal(remote.address().to_string(), remote.port(), verdict);
      asio::co_spawn(w.io(),
                     refuse_before_tls(std::move(socket), verdict.sqlstate, verdict.message,
                                       rt->config->proxy.client_handshake_timeout),
                     asio::detached);
      return;
    }
  }
  auto session = std::make_shared<ClientSession>(*this, w, std::move(socket), via_proxy, std::move(initial));
  ClientSession::start(std::move(session));
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

std::vector<config::Diagnostic> Server::reload() {
  systemd::ReloadNotice reload_notice;         // RELOADING=1 now, READY=1 on every way out
  std::lock_guard reload_lock(reload_mutex_);  // SIGHUP, RELOAD and SET one at a time: none loses another's
  auto current = runtime();
  auto loaded = config::load(current->config->path);
  if (!loaded.config) {
    for (const auto& d : loaded.diagnostics)
      spdlog::error("reload refused: {}", d.to_string());
    return loaded.diagnostics;
  }
  return apply_config(std::make_shared<const config::Config>(std::move(*loaded.config)), "reloaded");
}

std::vector<config::Diagnostic> Server::set_key(std::string_view key, std::string_view value) {
  systemd::ReloadNotice reload_notice;
  std::lock_guard reload_lock(reload_mutex_);
  auto r = config::with_setting(*runtime()->config, key, value);
  if (!r.config) {
    for (const auto& d : r.diagnostics)
      spdlog::warn("SET {} = {} refused: {}", key, value, d.message);
    return r.diagnostics;
  }
  return apply_config(std::make_shared<const config::Config>(std::move(*r.config)),
                      fmt::format("SET {} = {}", key, value));
}

std::vector<config::Diagnostic> Server::apply_config(std::shared_ptr<const config::Config> config,
                                                     std::string_view what) {
  // Called with reload_mutex_ held.
  auto current = runtime();
  auto built = build_runtime(std::move(config));
  if (!built.runtime) {
    for (const auto& d : built.diagnostics)
      spdlog::error("{} refused: {}", what, d.to_string());
    return built.diagnostics;
  }
  const auto& new_cfg = *built.runtime->config;
  // Keys that only take effect at start are reported, not silently ignored.
  auto old_rows = config::config_rows(*current->config);
  auto new_rows = config::config_rows(new_cfg);
  for (std::size_t i = 0; i < old_rows.size() && i < new_rows.size(); ++i) {
    if (!new_rows[i].reloadable && old_rows[i].value != new_rows[i].value) {
      spdlog::warn("{}: {} changed from {} to {}, which takes effect only after a restart", what,
                   new_rows[i].key, old_rows[i].value, new_rows[i].value);
    }
  }
  log::set_level(new_cfg.log.level);
  {
    std::lock_guard lock(runtime_mutex_);
    runtime_ = built.runtime;
  }
  auth_query_.clear();  // auth.query or its user may have changed; secrets are looked up afresh
  // Pool sizes and limits apply now: a smaller pool closes surplus idle connections, busy ones as they
  // come back; a bigger one opens what its waiters need.
  for (const auto& p : pools_->pools()) {
    const config::DatabaseSettings* db = new_cfg.find_database(p->database());
    if (db == nullptr) continue;  // removed: its clients keep their pool until they leave
    pools_->apply_limits(db->name, p->user(), pool_limits(db->pool), db->pool.max_db_connections,
                         db->pool.max_user_connections);
    p->set_connect_request(connect_request(*built.runtime, *db, p->user()));
  }
  if (new_cfg.proxy.revoke_on_reload) revoke_refused_clients();
  spdlog::info("{} {} (auth file: {} users); new connections use it", what, new_cfg.path.string(),
               built.runtime->auth->size());
  return {};
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
  systemd::notify_stopping();
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
    // A stop is bounded: whatever is still cleaning up (a rollback, a reset query) gets 10 s more. In a
    // rolling restart the next process waits for this one to exit; otherwise the operator's service manager
    // does.
    shutdown_timer_->expires_after(std::chrono::seconds(10));
    shutdown_timer_->async_wait([this](const boost::system::error_code& e) {
      if (e) return;
      spdlog::warn("{}sessions still cleaning up 10 s after shutdown_timeout; exiting",
                   handing_over() ? "rolling restart: " : "");
      stop_all();
    });
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

void Server::session_destroyed() {
  sessions_alive_.fetch_sub(1, std::memory_order_acq_rel);
  if (draining() && !stopped_.load(std::memory_order_acquire)) {
    asio::post(workers_[0]->io(), [this] { maybe_finish(); });
  }
}

asio::awaitable<void> Server::handover_loop() {
  for (;;) {
    auto accepted = co_await handover_acceptor_->async_accept(use_tuple);
    if (std::get<0>(accepted)) co_return;  // closed: shutting down
    auto peer_ptr = std::make_shared<asio::local::stream_protocol::socket>(std::move(std::get<1>(accepted)));
    auto& peer = *peer_ptr;
    std::array<char, 32> buf{};
    pool::Deadline deadline(peer.get_executor());
    deadline.arm(std::chrono::seconds(5), [weak = std::weak_ptr(peer_ptr)] {
      if (auto p = weak.lock()) {
        boost::system::error_code ignored;
        p->close(ignored);
      }
    });
    auto [rec, n] = co_await asio::async_read(
        peer, asio::buffer(buf.data(), handover::takeover_request.size()), use_tuple);
    deadline.cancel();
    if (rec || std::string_view(buf.data(), n) != handover::takeover_request || draining()) continue;
    // Only this user (or root) may take the listeners: anyone else could take over the clients' traffic.
    ucred cred{};
    socklen_t cred_len = sizeof cred;
    if (::getsockopt(peer.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0 ||
        (cred.uid != ::geteuid() && cred.uid != 0)) {
      spdlog::warn("rolling restart: takeover request from uid {} refused (not this process's user)",
                   cred.uid);
      continue;
    }
    std::vector<int> fds;
    for (auto& a : acceptors_)
      fds.push_back(a->native_handle());
    if (fds.empty()) continue;
    if (!handover::send_listeners(peer.native_handle(), fds)) {
      spdlog::error("rolling restart: handing the listeners over failed: {}", std::strerror(errno));
      continue;
    }
    spdlog::info("rolling restart: listeners handed to the new process; draining");
    handover_peer_ = std::make_unique<asio::local::stream_protocol::socket>(std::move(peer));
    boost::system::error_code ignored;
    handover_acceptor_->close(ignored);
    for (auto& a : acceptors_)
      a->close(ignored);  // our descriptors only: the sockets live on in the new process
    handing_over_.store(true, std::memory_order_release);
    begin_shutdown();
    // The new process passes on the CancelRequests it receives meanwhile: their keys are ours.
    std::string line;
    for (;;) {
      auto [lec, got] =
          co_await asio::async_read_until(*handover_peer_, asio::dynamic_buffer(line, 64), '\n', use_tuple);
      if (lec) co_return;  // the new process is gone, or the line is too long: nothing more to pass on
      std::string_view text(line.data(), got - 1);
      if (text.size() == 23 && text.starts_with("CANCEL ")) {
        std::uint8_t raw[8];
        bool ok = true;
        for (std::size_t b = 0; b < 8 && ok; ++b) {
          auto parsed = std::from_chars(text.data() + 7 + 2 * b, text.data() + 9 + 2 * b, raw[b], 16);
          ok = parsed.ec == std::errc{} && parsed.ptr == text.data() + 9 + 2 * b;
        }
        if (ok)
          co_await cancel_for_successor(
              protocol::CancelRequest{static_cast<std::int32_t>(protocol::load_u32(raw)),
                                      static_cast<std::int32_t>(protocol::load_u32(raw + 4))});
      }
      line.erase(0, got);
    }
  }
}

asio::awaitable<void> Server::cancel_for_successor(protocol::CancelRequest key) {
  log::SessionLog log;
  log.set_session("rolling-restart", "-");
  log.info("cancel request passed on by the new process");
  if (!co_await cancel_local(key, workers_[0]->io().get_executor(), log)) {
    log.info("its key is unknown here: ignored");
    events_.count(EventFamily::cancels, "unknown_key");
  }
}

asio::awaitable<bool> Server::cancel_local(protocol::CancelRequest key, asio::any_io_executor executor,
                                           const log::SessionLog& log) {
  auto found = cancels_.find(key);
  if (!found) co_return false;
  if (found->queued) {
    // Nothing ran yet: the request is dropped and its client answered 57014, as PostgreSQL answers a
    // cancelled statement.
    log.info("cancel request for a client waiting for a server connection: its request is abandoned");
    events_.count(EventFamily::cancels, "abandoned");
    co_return true;
  }
  if (!found->target) {
    log.info("cancel request for a client with nothing under way ignored");
    events_.count(EventFamily::cancels, "idle");
    co_return true;
  }
  const CancelTarget& target = *found->target;
  events_.count(EventFamily::cancels, "sent");
  // The server connection stays pinned to its client until this is done, so the cancel can never reach the
  // next client's query on that connection.
  log.info("forwarding cancel request to {} (backend pid {})", target.host, target.server_key.process_id);
  auto rt = runtime();
  co_await pool::send_cancel(executor, target.endpoint, target.host, target.server_key, rt->server_tls,
                             rt->server_policy, rt->config->pool.server_connect_timeout);
  if (target.connection) target.connection->cancels_in_flight.fetch_sub(1, std::memory_order_acq_rel);
  co_return true;
}

void Server::maybe_finish() {
  if (!draining() || clients_.load(std::memory_order_acquire) > 0 ||
      sessions_alive_.load(std::memory_order_acquire) > 0 ||
      (handing_over() &&
       accept_loops_.load(std::memory_order_acquire) > 0))  // closed listeners: wait for them
    return;
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
    if (metrics_) metrics_->stop();
    if (stats_timer_) stats_timer_->cancel();
    if (signals_) signals_->cancel(ec);
    if (shutdown_timer_) shutdown_timer_->cancel();
  });
  for (auto& w : workers_)
    w->stop();
}

}  // namespace pgw::proxy

namespace pgw::proxy {

// ---------------------------------------------------------------------------------------------------------------
// Operations: what the admin console and /metrics read and do.

asio::awaitable<std::vector<SessionInfo>> Server::session_snapshot() {
  std::vector<SessionInfo> all;
  for (auto& w : workers_) {
    // Runs on that worker's thread, where its sessions live; resumes here with the copies. Built before the
    // co_await (scripts/check-coroutines).
    auto copy_sessions = [worker = w.get()]() -> asio::awaitable<std::vector<SessionInfo>> {
      std::vector<SessionInfo> out;
      for (const ClientSession* s : worker->sessions())
        out.push_back(s->info());
      co_return out;
    };
    auto part = co_await asio::co_spawn(w->io(), std::move(copy_sessions), asio::use_awaitable);
    std::move(part.begin(), part.end(), std::back_inserter(all));
  }
  co_return all;
}

std::map<std::string, pool::CounterValues> Server::database_totals() const {
  std::map<std::string, pool::CounterValues> out;
  for (const auto& p : pools_->pools()) {
    auto values = p->counters().totals();
    auto& sum = out[p->database()];
    for (std::size_t i = 0; i < values.size(); ++i)
      sum[i] += values[i];
  }
  return out;
}

std::map<std::string, std::array<std::uint64_t, 7>> Server::database_averages() const {
  std::lock_guard lock(stats_mutex_);
  return averages_;
}

// Every stats period (60 s, PgBouncer's stats_period default): the rates over the period that just ended.
void Server::stats_period_step() {
  stats_timer_->expires_after(std::chrono::seconds(60));
  stats_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    using pool::PoolCounter;
    auto totals = database_totals();
    auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(stats_mutex_);
      double seconds = std::max(1e-3, std::chrono::duration<double>(now - period_started_at_).count());
      averages_.clear();
      for (const auto& entry : totals) {
        const std::string& db = entry.first;
        const pool::CounterValues& values = entry.second;
        pool::CounterValues before{};
        if (auto it = period_start_.find(db); it != period_start_.end()) before = it->second;
        auto delta = [&](PoolCounter c) {
          auto i = static_cast<std::size_t>(c);
          return values[i] >= before[i] ? values[i] - before[i] : 0;
        };
        auto per_second = [&](PoolCounter c) {
          return static_cast<std::uint64_t>(static_cast<double>(delta(c)) / seconds);
        };
        auto mean = [&](PoolCounter sum, PoolCounter count) {
          auto n = delta(count);
          return n == 0 ? std::uint64_t{0} : delta(sum) / n;
        };
        averages_[db] = {per_second(PoolCounter::xact_count),
                         per_second(PoolCounter::query_count),
                         per_second(PoolCounter::received),
                         per_second(PoolCounter::sent),
                         mean(PoolCounter::xact_time_us, PoolCounter::xact_count),
                         mean(PoolCounter::query_time_us, PoolCounter::query_count),
                         mean(PoolCounter::wait_time_us, PoolCounter::wait_count)};
      }
      period_start_ = std::move(totals);
      period_started_at_ = now;
    }
    stats_period_step();
  });
}

void Server::update_any_paused_locked() {
  any_paused_.store(paused_all_ || suspended_ || !paused_databases_.empty(), std::memory_order_release);
}

void Server::pause(const std::optional<std::string>& database) {
  std::lock_guard lock(pause_mutex_);
  if (database) {
    paused_databases_.insert(*database);
  } else {
    paused_all_ = true;
  }
  update_any_paused_locked();
  spdlog::info("admin: paused {}", database ? "database " + *database : std::string("all databases"));
}

void Server::suspend() {
  std::lock_guard lock(pause_mutex_);
  suspended_ = true;
  update_any_paused_locked();
  spdlog::info("admin: suspended");
}

bool Server::resume(const std::optional<std::string>& database) {
  std::lock_guard lock(pause_mutex_);
  bool was = false;
  if (database) {
    was = paused_databases_.erase(*database) > 0;
  } else {
    was = paused_all_ || suspended_ || !paused_databases_.empty();
    paused_all_ = suspended_ = false;
    paused_databases_.clear();
  }
  update_any_paused_locked();
  if (was) spdlog::info("admin: resumed {}", database ? "database " + *database : std::string("everything"));
  return was;
}

bool Server::paused(std::string_view database) const noexcept {
  if (!any_paused_.load(std::memory_order_acquire)) return false;
  std::lock_guard lock(pause_mutex_);
  return paused_all_ || suspended_ || paused_databases_.contains(database);
}

Server::PauseState Server::pause_state() const {
  std::lock_guard lock(pause_mutex_);
  return {paused_all_, suspended_, {paused_databases_.begin(), paused_databases_.end()}};
}

asio::awaitable<bool> Server::wait_servers_released(std::optional<std::string> database) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  auto still_paused = [&] {
    if (database) return paused(*database);
    auto st = pause_state();
    return st.paused_all || st.suspended;
  };
  for (;;) {
    if (!still_paused()) co_return false;  // RESUME came first
    unsigned busy = 0;
    for (const auto& p : pools_->pools()) {
      if (!database || p->database() == *database) busy += p->stats().active;
    }
    if (busy == 0) co_return true;
    t.expires_after(std::chrono::milliseconds(20));
    auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return false;
  }
}

void Server::close_idle_servers(const std::optional<std::string>& database) {
  for (const auto& p : pools_->pools()) {
    if (!database || p->database() == *database) {
      while (p->evict_one_idle()) {
      }
    }
  }
}

void Server::kill_database(const std::string& database) {
  spdlog::info("admin: closing every client and server connection of database {}", database);
  for (auto& w : workers_) {
    asio::post(w->io(), [worker = w.get(), database] {
      std::vector<ClientSession*> sessions(worker->sessions().begin(), worker->sessions().end());
      for (ClientSession* s : sessions) {
        if (s->database() == database) s->kill();
      }
    });
  }
  close_idle_servers(database);
}

void Server::shutdown() {
  asio::post(workers_[0]->io(), [this] {
    if (!draining()) begin_shutdown();
  });
}

}  // namespace pgw::proxy

namespace pgw::proxy {

namespace {

// A label value in the text format: backslash, double quote and newline escaped.
std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class MetricsText {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP pgwarden_{} {}\n# TYPE pgwarden_{} {}\n", name, help,
                   name, type);
  }
  template <class T>
  void sample(std::string_view name, std::string_view labels, T value) {
    fmt::format_to(std::back_inserter(out_), "pgwarden_{}{}{}{} {}\n", name, labels.empty() ? "" : "{",
                   labels, labels.empty() ? "" : "}", value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

asio::awaitable<std::string> Server::render_metrics() {
  using pool::PoolCounter;
  MetricsText m;
  auto rt = runtime();
  const auto& cfg = *rt->config;
  m.family("info", "gauge", "pgwarden's version");
  m.sample("info", fmt::format("version=\"{}\"", PGW_VERSION), 1);
  m.family("start_time_seconds", "gauge", "Start time of the process since the Unix epoch");
  m.sample("start_time_seconds", "",
           std::chrono::duration_cast<std::chrono::seconds>(started_at_.time_since_epoch()).count());
  m.family("client_connections", "gauge", "Client connections admitted (logged in or logging in)");
  m.sample("client_connections", "", client_count());
  m.family("max_client_connections", "gauge", "proxy.max_client_conn");
  m.sample("max_client_connections", "", cfg.proxy.max_client_conn);

  struct PoolRow {
    std::string labels;
    pool::Pool::Stats stats;
    pool::Pool::ClientCounts clients;
    pool::CounterValues counters;
    pool::BucketValues buckets;
    unsigned size;
  };
  std::vector<PoolRow> rows;
  for (const auto& p : pools_->pools()) {
    PoolRow r{fmt::format("database=\"{}\",user=\"{}\"", label_value(p->database()), label_value(p->user())),
              p->stats(),
              {},
              p->counters().totals(),
              p->counters().wait_histogram(),
              p->limits().default_size};
    r.clients = p->client_counts(r.stats);
    rows.push_back(std::move(r));
  }
  m.family("pool_clients", "gauge",
           "Logged-in clients of a pool by state (waiting: for a server connection, or for RESUME)");
  for (const auto& r : rows) {
    m.sample("pool_clients", r.labels + ",state=\"active\"", r.clients.active);
    m.sample("pool_clients", r.labels + ",state=\"waiting\"", r.clients.waiting);
  }
  m.family("pool_servers", "gauge", "Server connections of a pool by state");
  for (const auto& r : rows) {
    m.sample("pool_servers", r.labels + ",state=\"active\"", r.stats.active);
    m.sample("pool_servers", r.labels + ",state=\"idle\"", r.stats.idle);
    m.sample("pool_servers", r.labels + ",state=\"login\"", r.stats.connecting);
  }
  m.family("pool_size", "gauge", "The pool's default_size now (after reloads and SET)");
  for (const auto& r : rows)
    m.sample("pool_size", r.labels, r.size);
  m.family("pool_max_wait_seconds", "gauge", "How long the oldest waiting client has waited");
  for (const auto& r : rows)
    m.sample("pool_max_wait_seconds", r.labels, static_cast<double>(r.stats.max_wait_ms) / 1000.0);
  for (std::size_t i = 0; i < pool::pool_counter_count; ++i) {
    const auto& info = pool::pool_counter_info[i];
    if (static_cast<PoolCounter>(i) == PoolCounter::wait_time_us ||
        static_cast<PoolCounter>(i) == PoolCounter::wait_count)
      continue;  // the histogram's _sum and _count
    std::string name = "pool_" + std::string(info.metric);
    m.family(name, "counter", info.help);
    for (const auto& r : rows) {
      if (info.microseconds) {
        m.sample(name, r.labels, static_cast<double>(r.counters[i]) / 1e6);
      } else {
        m.sample(name, r.labels, r.counters[i]);
      }
    }
  }
  m.family("pool_wait_seconds", "histogram", "Time clients waited for a server connection, per acquisition");
  for (const auto& r : rows) {
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < pool::wait_buckets.size(); ++b) {
      cumulative += r.buckets[b];
      m.sample("pool_wait_seconds_bucket", fmt::format("{},le=\"{}\"", r.labels, pool::wait_buckets[b]),
               cumulative);
    }
    auto count = r.counters[static_cast<std::size_t>(PoolCounter::wait_count)];
    m.sample("pool_wait_seconds_bucket", r.labels + ",le=\"+Inf\"", count);
    m.sample("pool_wait_seconds_sum", r.labels,
             static_cast<double>(r.counters[static_cast<std::size_t>(PoolCounter::wait_time_us)]) / 1e6);
    m.sample("pool_wait_seconds_count", r.labels, count);
  }
  m.family("database_paused", "gauge", "1 while the database is paused (PAUSE, KILL, SUSPEND)");
  for (const auto& db : cfg.databases)
    m.sample("database_paused", fmt::format("database=\"{}\"", label_value(db.name)),
             paused(db.name) ? 1 : 0);
  for (std::size_t f = 0; f < event_families.size(); ++f) {
    const auto& info = event_families[f];
    m.family(info.metric, "counter", info.help);
    for (const auto& [label, n] : events_.of(static_cast<EventFamily>(f)))
      m.sample(info.metric, fmt::format("{}=\"{}\"", info.label, label_value(label)), n);
  }
  m.family("audit_enabled", "gauge", "1 when the audit log is on");
  m.sample("audit_enabled", "", audit_ ? 1 : 0);
  if (audit_) {
    auto s = audit_->stats();
    auto gauge = [&](std::string_view name, std::string_view help, auto value) {
      m.family(name, "gauge", help);
      m.sample(name, "", value);
    };
    auto counter = [&](std::string_view name, std::string_view help, auto value) {
      m.family(name, "counter", help);
      m.sample(name, "", value);
    };
    gauge("audit_queue_records", "Audit records waiting for the writer thread", s.queue_records);
    gauge("audit_queue_bytes", "Bytes of audit records waiting for the writer thread", s.queue_bytes);
    gauge("audit_failing", "1 while the audit log cannot write", s.failing ? 1 : 0);
    gauge("audit_last_seq", "seq of the last audit record written", s.last_seq);
    counter("audit_records_written_total", "Audit records written to every sink", s.written);
    counter("audit_records_dropped_total", "Audit records lost under on_failure = \"drop\"", s.dropped);
    counter("audit_appends_refused_total", "Statements refused under on_failure = \"block\"", s.refused);
    counter("audit_write_errors_total", "Failed audit write, fsync or rotate attempts", s.write_errors);
    counter("audit_fsyncs_total", "fsync calls on the audit file", s.fsyncs);
    counter("audit_fsync_seconds_total", "Time spent in fsync of the audit file",
            static_cast<double>(s.fsync_us_total) / 1e6);
    gauge("audit_fsync_max_seconds", "Longest fsync of the audit file so far",
          static_cast<double>(s.fsync_us_max) / 1e6);
  }
  co_return m.take();
}

}  // namespace pgw::proxy
