// Startup options parsing (as PostgreSQL's pg_split_opts) and SET statement quoting.
#include "settings.hpp"

#include "client_session.hpp"

namespace pgw::proxy {

namespace {

constexpr std::string_view reported[] = {
    "client_encoding", "DateStyle", "IntervalStyle", "TimeZone", "standard_conforming_strings",
    "application_name"};

// One -c switch body "name=value" into a setting.
bool add_switch(std::string_view body, std::vector<Setting>& out, std::string& error) {
  auto eq = body.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    error = "invalid command-line argument for server process: " + std::string(body);
    return false;
  }
  std::string name(body.substr(0, eq));
  for (char& c : name) {
    if (c == '-') c = '_';  // --search-path=x is search_path
  }
  put_setting(out, name, body.substr(eq + 1));
  return true;
}

}  // namespace

bool same_name(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

Setting* find_setting(std::vector<Setting>& settings, std::string_view name) noexcept {
  for (auto& s : settings) {
    if (same_name(s.name, name)) return &s;
  }
  return nullptr;
}

const Setting* find_setting(const std::vector<Setting>& settings, std::string_view name) noexcept {
  for (const auto& s : settings) {
    if (same_name(s.name, name)) return &s;
  }
  return nullptr;
}

void put_setting(std::vector<Setting>& settings, std::string_view name, std::string_view value) {
  if (Setting* s = find_setting(settings, name)) {
    s->value = std::string(value);
  } else {
    settings.push_back({std::string(name), std::string(value)});
  }
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

bool settings_from_startup(const protocol::StartupMessage& startup, std::vector<Setting>& out,
                           std::string& error) {
  for (const auto& p : startup.parameters) {
    if (p.name == "user" || p.name == "database" || p.name == "replication") continue;
    if (p.name != "options") {
      put_setting(out, p.name, p.value);
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

void append_set(std::string& sql, std::string_view name, std::string_view value) {
  sql += "SET \"";
  for (char c : name) {
    if (c == '"') sql += '"';
    sql += c;
  }
  sql += "\" TO E'";
  for (char c : value) {
    if (c == '\'' || c == '\\') sql += c;
    sql += c;
  }
  sql += "';";
}

void append_reset(std::string& sql, std::string_view name) {
  sql += "RESET \"";
  for (char c : name) {
    if (c == '"') sql += '"';
    sql += c;
  }
  sql += "\";";
}

}  // namespace pgw::proxy
