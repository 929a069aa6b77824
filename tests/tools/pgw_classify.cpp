// Test tool: classifies the rows of an audit corpus (tests/data/audit_statements.tsv format) read from stdin,
// in order, as one session, and prints one JSON line per row, for tests/integration/test_audit_classify.py.
#include <iostream>
#include <string>
#include <vector>

#include "pgw/audit/classify.hpp"
#include "pgw/audit/sql.hpp"

namespace {

std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char e = s[++i];
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
    } else {
      out += s[i];
    }
  }
  return out;
}

void json_string(std::string& out, std::string_view s) {
  static const char* const kHex = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

}  // namespace

int main() {
  pgw::audit::Classifier classifier;
  pgw::audit::SqlPrepared session;
  std::string line;
  int n = 0;
  while (std::getline(std::cin, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    const std::size_t tab = line.rfind('\t');
    const std::string sql = unescape(tab == std::string::npos ? line : line.substr(tab + 1));
    const std::vector<pgw::audit::Statement> stmts = classifier.classify(sql, &session);
    std::string out = "{\"line\":" + std::to_string(n) + ",\"parses\":";
    out += pgw::audit::parses(sql) ? "true" : "false";
    out += ",\"sql\":";
    json_string(out, sql);
    out += ",\"statements\":[";
    for (std::size_t i = 0; i < stmts.size(); ++i) {
      const pgw::audit::Statement& st = stmts[i];
      const std::string_view text = st.text(sql);
      out += i ? ",{" : "{";
      out += "\"class\":";
      json_string(out, pgw::audit::class_name(st.cls));
      out += ",\"command\":";
      json_string(out, st.command);
      out += ",\"objects\":[";
      for (std::size_t k = 0; k < st.objects.size(); ++k) {
        if (k) out += ',';
        json_string(out, st.objects[k]);
      }
      out += "],\"superset\":";
      json_string(out, pgw::audit::superset_name(st.superset));
      out += ",\"parses\":";
      out += pgw::audit::parses(text) ? "true" : "false";
      out += ",\"text\":";
      json_string(out, text);
      out += '}';
    }
    out += "]}";
    std::cout << out << '\n';
    // The integration test runs every row against PostgreSQL, where the corpus's PREPAREs succeed.
    for (const pgw::audit::Statement& st : stmts)
      session.on_complete(st);
  }
  return 0;
}
