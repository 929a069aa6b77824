// Protocol-level prepared statements in transaction pooling: a client's statement names are its own; on a
// server connection a statement is known by a name derived from its text and parameter types, so the same
// statement prepared by many clients is prepared once per server connection, in an LRU cache bounded by
// max_prepared_statements.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pgw/protocol/bytes.hpp"

namespace pgw::pool {

struct StatementKey {
  std::array<std::uint8_t, 16> digest{};
  bool operator==(const StatementKey&) const = default;
  // A nonzero 64-bit tag for the request tracker.
  std::uint64_t tag() const noexcept;
};

struct StatementKeyHash {
  std::size_t operator()(const StatementKey& k) const noexcept;
};

struct PreparedStatement {
  StatementKey key;
  std::string server_name;  // "pgw_" + 32 hex digits: what the server knows it as
  std::string query;
  std::int16_t num_parameter_types = 0;
  std::vector<std::uint8_t> parameter_types;  // num_parameter_types int32 OIDs, as sent
};

// The statement a Parse describes (digest over the text and the parameter types).
std::shared_ptr<const PreparedStatement> make_statement(std::string_view query,
                                                        protocol::Bytes parameter_types,
                                                        std::int16_t num_parameter_types);

// The names one client has prepared. Keyed as PostgreSQL keys them, by their first 63 bytes (NAMEDATALEN -
// 1), and bounded in number and in bytes (names, texts and parameter types, plus a node's overhead each).
class ClientStatements {
 public:
  enum class Added : std::uint8_t { ok, too_many, too_large };
  ClientStatements(std::size_t max_names, std::size_t max_bytes) : max_(max_names), max_bytes_(max_bytes) {}
  Added add(std::string_view name, std::shared_ptr<const PreparedStatement> statement);
  const PreparedStatement* find(std::string_view name) const noexcept;
  bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }
  void remove(std::string_view name);
  void clear() noexcept {
    names_.clear();
    bytes_ = 0;
  }
  std::size_t size() const noexcept { return names_.size(); }
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::size_t max_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::unordered_map<std::string, std::shared_ptr<const PreparedStatement>, Hash, std::equal_to<>> names_;
};

// The statements prepared on one server connection, most recently used last.
class ServerStatements {
 public:
  // True if present (and now the most recently used).
  bool touch(const StatementKey& key);
  // Records a statement; returns the server name of the least recently used one to close if over capacity.
  std::optional<std::string> add(const PreparedStatement& statement, std::size_t capacity);
  void remove_tag(std::uint64_t tag);
  void remove(const StatementKey& key);
  void clear() noexcept {
    lru_.clear();
    index_.clear();
  }
  std::size_t size() const noexcept { return lru_.size(); }

 private:
  struct Entry {
    StatementKey key;
    std::string server_name;
  };
  std::list<Entry> lru_;
  std::unordered_map<StatementKey, std::list<Entry>::iterator, StatementKeyHash> index_;
};

}  // namespace pgw::pool
