// PgBouncer auth_file parsing: "user" "secret" per line, "" escapes a quote, the rest of a line is ignored.
#include "pgw/config/auth_file.hpp"

#include <fstream>
#include <set>
#include <sstream>

namespace pgw::config {

namespace {

// Reads a double-quoted field starting at text[i] == '"'; advances i past the closing quote.
bool quoted_field(std::string_view line, std::size_t& i, std::string& out) {
  out.clear();
  ++i;
  while (i < line.size()) {
    char c = line[i];
    if (c == '"') {
      if (i + 1 < line.size() && line[i + 1] == '"') {
        out.push_back('"');
        i += 2;
        continue;
      }
      ++i;
      return true;
    }
    out.push_back(c);
    ++i;
  }
  return false;
}

void skip_blanks(std::string_view line, std::size_t& i) {
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
    ++i;
}

}  // namespace

AuthFileResult parse_auth_file(std::string_view text, const std::filesystem::path& file_name) {
  AuthFileResult r;
  const std::string file = file_name.string();
  std::set<std::string, std::less<>> seen;
  std::uint32_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto at = [&](std::size_t col) { return Position{file, line_no, static_cast<std::uint32_t>(col + 1)}; };
    std::size_t i = 0;
    skip_blanks(line, i);
    if (i == line.size() || line[i] == ';' || line[i] == '#') continue;
    AuthFileEntry e;
    if (line[i] != '"') {
      r.diagnostics.push_back({at(i), "expected a double-quoted user name: \"user\" \"secret\""});
      continue;
    }
    std::size_t user_col = i;
    if (!quoted_field(line, i, e.user)) {
      r.diagnostics.push_back({at(user_col), "user name has no closing double quote"});
      continue;
    }
    skip_blanks(line, i);
    if (i == line.size() || line[i] != '"') {
      r.diagnostics.push_back({at(i), "expected a double-quoted secret after the user name"});
      continue;
    }
    std::size_t secret_col = i;
    if (!quoted_field(line, i, e.secret)) {
      r.diagnostics.push_back({at(secret_col), "secret has no closing double quote"});
      continue;
    }
    if (e.user.empty()) {
      r.diagnostics.push_back({at(user_col), "empty user name"});
      continue;
    }
    if (!seen.insert(e.user).second) {
      r.diagnostics.push_back({at(user_col), "user \"" + e.user + "\" is listed twice"});
      continue;
    }
    e.where = at(secret_col);
    r.entries.push_back(std::move(e));
  }
  return r;
}

AuthFileResult load_auth_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    AuthFileResult r;
    r.diagnostics.push_back({Position{file.string(), 1, 1}, "cannot read the auth file"});
    return r;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_auth_file(ss.str(), file);
}

}  // namespace pgw::config
