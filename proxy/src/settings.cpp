// Startup options parsing (as PostgreSQL's pg_split_opts) and SET statement quoting.
#include "settings.hpp"

namespace pgw::proxy {

namespace {

// The SPEC's list, and default_transaction_read_only, which PostgreSQL 14 and later report too: one client's
// SET of it would otherwise make the next client's writes fail.
constexpr std::string_view reported[] = {"client_encoding",
                                         "DateStyle",
                                         "IntervalStyle",
                                         "TimeZone",
                                         "standard_conforming_strings",
                                         "application_name",
                                         "default_transaction_read_only"};

// One -c switch body "name=value" into a setting.
bool add_switch(std::string_view body, SettingList& out, std::string& error) {
  auto eq = body.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    error = "invalid command-line argument for server process: " + std::string(body);
    return false;
  }
  std::string name(body.substr(0, eq));
  for (char& c : name) {
    if (c == '-') c = '_';  // --search-path=x is search_path
  }
  out.put(name, body.substr(eq + 1));
  return true;
}

}  // namespace

bool same_name(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (fold_case(a[i]) != fold_case(b[i])) return false;
  }
  return true;
}

void SettingList::Iterator::load() {
  if (at_ >= entries_.size()) {
    at_ = entries_.size();
    return;
  }
  auto name_end = entries_.find('\0', at_);
  auto value_end = entries_.find('\0', name_end + 1);
  entry_ = {entries_.substr(at_, name_end - at_), entries_.substr(name_end + 1, value_end - name_end - 1)};
  next_ = value_end + 1;
}

std::optional<std::string_view> SettingList::find(std::string_view name) const noexcept {
  for (const Entry& e : *this) {
    if (same_name(e.name, name)) return e.value;
  }
  return std::nullopt;
}

void SettingList::put(std::string_view name, std::string_view value) {
  for (auto it = begin(); it != end(); ++it) {
    if (!same_name(it->name, name)) continue;
    const auto at = static_cast<std::size_t>(it->value.data() - data_.data());
    const std::size_t old_size = it->value.size();
    data_.replace(at, old_size, value);
    entries_size_ = entries_size_ - old_size + value.size();
    return;
  }
  std::string entry;
  entry.reserve(name.size() + value.size() + 2);
  for (char c : name)
    entry.push_back(fold_case(c));
  entry.push_back('\0');
  entry.append(value);
  entry.push_back('\0');
  data_.insert(entries_size_, entry);
  entries_size_ += entry.size();
}

void SettingList::set_tail(std::string_view tail) {
  data_.resize(entries_size_ + 1);
  data_.append(tail);
}

bool is_tracked(std::string_view name, const std::vector<std::string>& extra) noexcept {
  for (auto r : reported) {
    if (same_name(r, name)) return true;
  }
  for (const auto& e : extra) {
    if (same_name(e, name)) return true;
  }
  return false;
}

bool settings_from_startup(const protocol::StartupMessage& startup, SettingList& out, std::string& error) {
  for (const auto& p : startup.parameters) {
    if (p.name == "user" || p.name == "database" || p.name == "replication") continue;
    if (p.name != "options") {
      out.put(p.name, p.value);
      continue;
    }
    // Words separated by spaces; a backslash makes the next character literal (PostgreSQL's pg_split_opts).
    std::vector<std::string> words;
    std::string word;
    bool escaped = false;
    for (char c : p.value) {
      if (escaped) {
        word.push_back(c);
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        if (!word.empty()) words.push_back(std::move(word));
        word.clear();
      } else {
        word.push_back(c);
      }
    }
    if (!word.empty()) words.push_back(std::move(word));
    for (std::size_t i = 0; i < words.size(); ++i) {
      std::string_view w = words[i];
      if (w == "-c") {
        if (i + 1 == words.size()) {
          error = "invalid command-line argument for server process: -c needs name=value";
          return false;
        }
        if (!add_switch(words[++i], out, error)) return false;
      } else if (w.starts_with("-c")) {
        if (!add_switch(w.substr(2), out, error)) return false;
      } else if (w.starts_with("--")) {
        if (!add_switch(w.substr(2), out, error)) return false;
      } else {
        error = "invalid command-line argument for server process: " + std::string(w) +
                " (pgwarden accepts -c name=value and --name=value in options)";
        return false;
      }
    }
  }
  return true;
}

namespace {
void append_literal(std::string& sql, std::string_view text) {
  sql += "E'";
  for (char c : text) {
    if (c == '\'' || c == '\\') sql += c;
    sql += c;
  }
  sql += '\'';
}
}  // namespace

void append_set(std::string& select_list, std::string_view name, std::string_view value) {
  if (!select_list.empty()) select_list += ", ";
  select_list += "pg_catalog.set_config(";
  append_literal(select_list, name);
  select_list += ", ";
  append_literal(select_list, value);
  select_list += ", false)";
}

namespace {
bool space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}
void skip_spaces(std::string_view& s) {
  while (!s.empty() && space(s.front()))
    s.remove_prefix(1);
}
bool take_keyword(std::string_view& s, std::string_view lower_word) {
  if (s.size() < lower_word.size()) return false;
  for (std::size_t i = 0; i < lower_word.size(); ++i) {
    if ((s[i] | 0x20) != lower_word[i]) return false;
  }
  if (s.size() > lower_word.size() && !space(s[lower_word.size()]) && s[lower_word.size()] != '"')
    return false;
  s.remove_prefix(lower_word.size());
  skip_spaces(s);
  return true;
}
}  // namespace

std::string_view deallocate_target(std::string_view sql) noexcept {
  skip_spaces(sql);
  if (!take_keyword(sql, "deallocate")) return {};
  take_keyword(sql, "prepare");
  std::string_view name;
  if (!sql.empty() && sql.front() == '"') {
    auto close = sql.find('"', 1);
    if (close == std::string_view::npos) return {};
    name = sql.substr(1, close - 1);
    if (name.empty() || name.find('"') != std::string_view::npos) return {};
    sql.remove_prefix(close + 1);
  } else {
    std::size_t n = 0;
    while (n < sql.size() && ((sql[n] >= 'a' && sql[n] <= 'z') || (sql[n] >= '0' && sql[n] <= '9') ||
                              sql[n] == '_' || sql[n] == '$')) {
      ++n;
    }
    // Upper-case letters would be folded by PostgreSQL: such names are left to the server.
    name = sql.substr(0, n);
    sql.remove_prefix(n);
    if (name.empty() || name == "all" || (name[0] >= '0' && name[0] <= '9')) return {};
  }
  skip_spaces(sql);
  if (!sql.empty() && sql.front() == ';') sql.remove_prefix(1);
  skip_spaces(sql);
  return sql.empty() ? name : std::string_view{};
}

void append_reset(std::string& sql, std::string_view name) {
  sql += "RESET \"";
  for (char c : name) {
    if (c == '"') sql += '"';
    sql += c;
  }
  sql += "\";";
}

// Both names hold an underscore, and SQL has few: found with memchr, one pass over the text.
bool mentions_string_settings(std::string_view sql) {
  // Whether `name` stands in sql with its first underscore at `underscore` (`offset` bytes into the name).
  auto named_at = [sql](std::size_t underscore, std::size_t offset, std::string_view name) {
    return underscore >= offset && sql.size() - (underscore - offset) >= name.size() &&
           same_name(sql.substr(underscore - offset, name.size()), name);
  };
  for (std::size_t at = sql.find('_'); at != std::string_view::npos; at = sql.find('_', at + 1)) {
    if (named_at(at, 8, "standard_conforming_strings") || named_at(at, 6, "client_encoding")) {
      return true;
    }
  }
  return false;
}

}  // namespace pgw::proxy
