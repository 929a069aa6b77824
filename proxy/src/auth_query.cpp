// The query runs in the extended protocol with the user name as a bound parameter, so no quoting is needed;
// the connection goes back to its pool only when the server says it is idle.
#include "auth_query.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pgw/protocol/buffer.hpp"
#include "pgw/protocol/framer.hpp"
#include "server.hpp"

namespace pgw::proxy {

namespace {

// A row of auth_query holds a name and a secret; anything larger is not an answer to it.
constexpr std::uint32_t max_reply_message = 64 * 1024;

struct Exchange {
  bool ok = false;
  bool idle = false;
  std::optional<std::string> secret;
  bool row = false;
  std::string error;
};

boost::asio::awaitable<Exchange> run_query(pool::ServerConnection& conn, const std::string& sql,
                                           const std::string& user) {
  using namespace protocol;
  Exchange x;
  std::vector<std::uint8_t> out;
  Encoder e(out);
  encode::parse(e, "", sql, {}, 0);
  std::array<std::optional<std::string_view>, 1> params{user};
  encode::bind_text(e, "", "", params);
  encode::execute(e, "", 0);
  encode::sync(e);
  if (e.error() != Error::none) {
    x.error = "auth.query or the user name cannot be sent: " + std::string(describe(e.error()));
    co_return x;
  }
  if (auto ec = co_await conn.stream.write_all(out)) {
    x.error = "cannot send auth.query: " + ec.message();
    co_return x;
  }
  Buffer in(4096);
  std::string server_error;
  for (;;) {
    FrameResult fr = parse_frame(in.readable(), max_reply_message);
    if (fr.status == FrameStatus::need_more) {
      in.reserve(std::max<std::size_t>(fr.needed, 4096));
      auto [ec, n] = co_await conn.stream.read_some(in.writable());
      if (ec) {
        x.error = "server connection lost during auth.query: " + ec.message();
        co_return x;
      }
      in.commit(n);
      continue;
    }
    if (fr.status == FrameStatus::error) {
      x.error = "invalid reply to auth.query: " + std::string(describe(fr.error));
      co_return x;
    }
    const Frame& f = fr.frame;
    switch (f.type) {
      case backend::data_row: {
        backend::DataRow row;
        if (decode(f.body, row) != Error::none || row.columns.size() != 2) {
          x.error = "auth.query must return two columns (user name, secret)";
        } else if (!x.row) {  // the first row counts, as PgBouncer does
          x.row = true;
          if (row.columns[1]) x.secret = std::string(as_text(*row.columns[1]));
        }
        break;
      }
      case backend::error_response: {
        backend::ErrorFields ef;
        decode(f.body, ef);
        server_error = std::string(ef.sqlstate) + " " + std::string(ef.message);
        break;
      }
      case backend::ready_for_query: {
        backend::ReadyForQuery rq;
        decode(f.body, rq);
        x.idle = rq.status == backend::TransactionStatus::idle;
        in.consume(f.wire_size);
        if (!server_error.empty()) {
          x.error = "auth.query failed on the server: " + server_error;
        } else if (x.error.empty()) {
          x.ok = true;
        }
        co_return x;
      }
      default:  // ParseComplete, BindComplete, CommandComplete, notices, ParameterStatus
        break;
    }
    in.consume(f.wire_size);
  }
}

}  // namespace

boost::asio::awaitable<AuthQuery::Result> AuthQuery::lookup(Server& server, Worker& worker, const Runtime& rt,
                                                            const config::DatabaseSettings& db,
                                                            const std::string& user) {
  const auto& auth = rt.config->auth;
  std::string key = db.name + '\0' + user;
  auto now = Clock::now();
  {
    std::lock_guard lock(mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      if (it->second.expires > now) co_return Result{Result::Status::found, it->second.secret, {}};
      cache_.erase(it);
    }
  }
  Result r;
  auto pool = server.pools().get(db.name, auth.query_user, pool_limits(db.pool), db.pool.max_db_connections,
                                 db.pool.max_user_connections,
                                 [&] { return connect_request(rt, db, auth.query_user); });
  auto acquired = co_await pool->acquire(worker.index(), worker.io().get_executor());
  if (acquired.status != pool::AcquireResult::Status::ok) {
    r.status = Result::Status::failed;
    r.error = "no server connection for auth.query_user \"" + auth.query_user +
              "\": " + (acquired.error.empty() ? std::string("timed out waiting for one") : acquired.error);
    co_return r;
  }
  auto conn = std::move(acquired.connection);
  pool::Deadline deadline(worker.io().get_executor());
  deadline.arm(db.pool.server_connect_timeout, [weak = std::weak_ptr(conn)] {
    if (auto c = weak.lock()) c->stream.close();
  });
  Exchange x = co_await run_query(*conn, auth.query, user);
  deadline.cancel();
  if (x.ok && x.idle && !deadline.fired()) {
    conn->last_used = pool::Clock::now();
    pool->release(std::move(conn), worker.index(), true);
  } else {
    pool->discard(std::move(conn));
  }
  if (!x.ok) {
    r.status = Result::Status::failed;
    r.error = x.error.empty() ? "auth.query did not finish cleanly" : x.error;
    co_return r;
  }
  if (!x.secret || x.secret->empty()) co_return r;  // no such user, or one without a password: not cached
  std::string problem;
  r.secret = AuthStore::classify(user, *x.secret, rt.auth_salt_key, problem);
  if (!r.secret) {
    r.status = Result::Status::failed;
    r.error = "auth.query returned an unusable secret for this user: " + problem;
    co_return r;
  }
  r.status = Result::Status::found;
  if (auth.query_cache_ttl.count() > 0) {
    std::lock_guard lock(mutex_);
    if (cache_.size() >= max_cached) {
      std::erase_if(cache_, [now](const auto& kv) { return kv.second.expires <= now; });
      if (cache_.size() >= max_cached) cache_.erase(cache_.begin());
    }
    cache_.insert_or_assign(std::move(key), Cached{*r.secret, now + auth.query_cache_ttl});
  }
  co_return r;
}

void AuthQuery::clear() {
  std::lock_guard lock(mutex_);
  cache_.clear();
}

}  // namespace pgw::proxy
