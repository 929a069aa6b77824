// Client settings: startup parameters (and `options`' -c switches) as name/value pairs, the ones PostgreSQL
// reports with ParameterStatus, and the SET statements that carry them to a pooled server connection.
#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/messages.hpp"

namespace pgw::proxy {

// A client's settings in one string, as compact as an idle client needs: "name\0value\0" per setting in the
// order first set, names folded to lower case (GUC names compare without case), then '\1' and a tail. The
// whole string is the settings key: equal keys (with equal tails) mean equal settings, so a server connection
// last brought in line with this key needs no comparison setting by setting.
class SettingList {
 public:
  struct Entry {
    std::string_view name;
    std::string_view value;
  };
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;  // *it refers into the iterator
    using value_type = Entry;
    using difference_type = std::ptrdiff_t;
    using pointer = const Entry*;
    using reference = const Entry&;
    Iterator() = default;
    Iterator(std::string_view entries, std::size_t at) : entries_(entries), at_(at) { load(); }
    const Entry& operator*() const noexcept { return entry_; }
    const Entry* operator->() const noexcept { return &entry_; }
    Iterator& operator++() {
      at_ = next_;
      load();
      return *this;
    }
    Iterator operator++(int) {
      Iterator before = *this;
      ++*this;
      return before;
    }
    bool operator==(const Iterator& other) const noexcept { return at_ == other.at_; }

   private:
    void load();
    std::string_view entries_;
    std::size_t at_ = 0;
    std::size_t next_ = 0;
    Entry entry_;
  };

  SettingList() : data_(1, '\1') {}
  Iterator begin() const { return {entries(), 0}; }
  Iterator end() const { return {entries(), entries_size_}; }
  bool empty() const noexcept { return entries_size_ == 0; }
  // Views into the list: valid until the next put() or set_tail().
  std::optional<std::string_view> find(std::string_view name) const noexcept;
  bool contains(std::string_view name) const noexcept { return find(name).has_value(); }
  // Replaces the value of a setting already there (in place), else appends it. Neither holds a NUL.
  void put(std::string_view name, std::string_view value);
  // What follows the settings in the key (which settings were compared, for clients of one pool).
  void set_tail(std::string_view tail);
  // Never empty: a server connection's empty key means "not known".
  const std::string& key() const noexcept { return data_; }

 private:
  std::string_view entries() const noexcept { return std::string_view(data_).substr(0, entries_size_); }
  std::string data_;
  std::size_t entries_size_ = 0;
};

// Startup parameters other than user, database and replication, with `options` ("-c name=value",
// "--name=value", backslash escapes a space) expanded. False with `error` set for options PostgreSQL would
// refuse.
bool settings_from_startup(const protocol::StartupMessage& startup, SettingList& out, std::string& error);

// GUC names are case-insensitive.
bool same_name(std::string_view a, std::string_view b) noexcept;

// Whether the text names standard_conforming_strings or client_encoding (any case): a statement that may
// change how the server reads string literals.
bool mentions_string_settings(std::string_view sql);

// ASCII case folding, as PostgreSQL folds parameter names.
constexpr char fold_case(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Parameters PostgreSQL reports with ParameterStatus and pgwarden keeps per client (plus
// track_extra_parameters).
bool is_tracked(std::string_view name, const std::vector<std::string>& extra) noexcept;

// `pg_catalog.set_config(E'name', E'value', false)`, comma-separated, for one SELECT: set_config parses the
// value as a startup option or the config file would (a list such as search_path = 'a,b' stays a list), and
// nothing in the quoted name or value can end the statement.
void append_set(std::string& select_list, std::string_view name, std::string_view value);
// The statement name of a simple query that is exactly "DEALLOCATE [PREPARE] name [;]" (name plain or
// double-quoted, case folded as PostgreSQL folds it), else "" (also for DEALLOCATE ALL).
std::string_view deallocate_target(std::string_view sql) noexcept;

// `RESET "name";`
void append_reset(std::string& sql, std::string_view name);

}  // namespace pgw::proxy
