// Test tool: classifies the rows of an audit corpus (tests/data/audit_statements.tsv format) read from stdin,
// in order, as one session, and prints one JSON line per row, for tests/integration/test_audit_classify.py.
#include <iostream>
#include <string>
#include <vector>

#include "corpus_text.hpp"
#include "pgw/audit/classify.hpp"
#include "pgw/audit/log.hpp"
#include "pgw/audit/sql.hpp"

using pgw::testing::unescape;

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
    pgw::audit::append_json_string(out, sql);
    out += ",\"statements\":[";
    for (std::size_t i = 0; i < stmts.size(); ++i) {
      const pgw::audit::Statement& st = stmts[i];
      const std::string_view text = st.text(sql);
      out += i ? ",{" : "{";
      out += "\"class\":";
      pgw::audit::append_json_string(out, pgw::audit::class_name(st.cls));
      out += ",\"command\":";
      pgw::audit::append_json_string(out, st.command);
      out += ",\"objects\":[";
      for (std::size_t k = 0; k < st.objects.size(); ++k) {
        if (k) out += ',';
        pgw::audit::append_json_string(out, st.objects[k]);
      }
      out += "],\"superset\":";
      pgw::audit::append_json_string(out, pgw::audit::superset_name(st.superset));
      out += ",\"parses\":";
      out += pgw::audit::parses(text) ? "true" : "false";
      out += ",\"text\":";
      pgw::audit::append_json_string(out, text);
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
