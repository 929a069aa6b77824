// Unit tests of the PgBouncer-format auth file parser: entries, comments, quoting and FILE:LINE:COL errors.
#include <gtest/gtest.h>

#include <unistd.h>
#include "diagnostics_text.hpp"

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "pgw/config/auth_file.hpp"

namespace pgw::config {
namespace {

using testing::Errors;
using testing::errors_of;

Errors errors(std::string_view text) {
  return errors_of(parse_auth_file(text, "userlist.txt"));
}

TEST(AuthFile, ValidLines) {
  const AuthFileResult r = parse_auth_file(
      "\"alice\" \"SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy\"\n"
      "\"bob\" \"md5a3556571e93b0d20722ba62be61e8c2d\"\n"
      "\"carol\"\t\"plain text pw\"\n",
      "/etc/pgwarden/userlist.txt");
  EXPECT_EQ(errors_of(r), Errors{});
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.entries[0].user, "alice");
  EXPECT_EQ(r.entries[0].secret, "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy");
  EXPECT_EQ(r.entries[0].where.file, "/etc/pgwarden/userlist.txt");
  EXPECT_EQ(r.entries[0].where.line, 1u);
  EXPECT_EQ(r.entries[0].where.column, 9u);  // the secret's opening quote
  EXPECT_EQ(r.entries[1].user, "bob");
  EXPECT_EQ(r.entries[1].secret, "md5a3556571e93b0d20722ba62be61e8c2d");
  EXPECT_EQ(r.entries[1].where.line, 2u);
  EXPECT_EQ(r.entries[1].where.column, 7u);
  EXPECT_EQ(r.entries[2].user, "carol");
  EXPECT_EQ(r.entries[2].secret, "plain text pw");
  EXPECT_EQ(r.entries[2].where.line, 3u);
  EXPECT_EQ(r.entries[2].where.column, 9u);
}

TEST(AuthFile, EmptyInput) {
  EXPECT_TRUE(parse_auth_file("", "u").entries.empty());
  EXPECT_TRUE(parse_auth_file("", "u").diagnostics.empty());
  EXPECT_TRUE(parse_auth_file("\n\n  \n", "u").entries.empty());
}

TEST(AuthFile, CommentsAndBlankLinesAreSkippedButCounted) {
  const AuthFileResult r = parse_auth_file(
      "; PgBouncer comment\n"
      "# shell-style comment\n"
      "\n"
      "   \t\n"
      "   ; indented comment\n"
      "\t# indented comment\n"
      "  \"alice\"   \"pw\"\n"
      ";\"bob\" \"pw\"\n"
      "#\"carol\" \"pw\"\n",
      "userlist.txt");
  EXPECT_EQ(errors_of(r), Errors{});
  ASSERT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.entries[0].user, "alice");
  EXPECT_EQ(r.entries[0].secret, "pw");
  EXPECT_EQ(r.entries[0].where.line, 7u);
  EXPECT_EQ(r.entries[0].where.column, 13u);
}

TEST(AuthFile, CrLfLineEndings) {
  const AuthFileResult r = parse_auth_file("\"alice\" \"pw1\"\r\n\r\n; note\r\n\"bob\" \"pw2\"\r\n", "u.txt");
  EXPECT_EQ(errors_of(r), Errors{});
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries[0].secret, "pw1");
  EXPECT_EQ(r.entries[1].user, "bob");
  EXPECT_EQ(r.entries[1].secret, "pw2");
  EXPECT_EQ(r.entries[1].where.line, 4u);
  // A CR is not a quote: an unterminated secret stays an error.
  EXPECT_EQ(errors("\"alice\" \"pw\r\n"), Errors{"userlist.txt:1:9: secret has no closing double quote"});
}

TEST(AuthFile, LastLineWithoutNewline) {
  const AuthFileResult r = parse_auth_file("\"alice\" \"a\"\n\"bob\" \"b\"", "u.txt");
  EXPECT_EQ(errors_of(r), Errors{});
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries[1].secret, "b");
}

TEST(AuthFile, DoubledQuotesInsideFields) {
  const AuthFileResult r = parse_auth_file("\"al\"\"ice\" \"pa\"\"ss\"\"\"\n\"\"\"\" \"x\"\n", "u.txt");
  EXPECT_EQ(errors_of(r), Errors{});
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries[0].user, "al\"ice");
  EXPECT_EQ(r.entries[0].secret, "pa\"ss\"");
  EXPECT_EQ(r.entries[0].where.column, 11u);
  EXPECT_EQ(r.entries[1].user, "\"");
  EXPECT_EQ(r.entries[1].secret, "x");
}

TEST(AuthFile, FieldsAfterTheSecretAreIgnored) {
  const AuthFileResult r = parse_auth_file(
      "\"alice\" \"pw\" \"extra\" \"fields\"\n"
      "\"bob\" \"pw\"; trailing comment\n"
      "\"carol\" \"pw\"unquoted junk \"\n",
      "u.txt");
  EXPECT_EQ(errors_of(r), Errors{});
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.entries[0].secret, "pw");
  EXPECT_EQ(r.entries[1].secret, "pw");
  EXPECT_EQ(r.entries[2].secret, "pw");
}

TEST(AuthFile, MissingOpeningQuote) {
  EXPECT_EQ(errors("alice \"pw\"\n"),
            Errors{"userlist.txt:1:1: expected a double-quoted user name: \"user\" \"secret\""});
  EXPECT_EQ(errors("\"a\" \"1\"\n\n   alice\"pw\"\n"),
            Errors{"userlist.txt:3:4: expected a double-quoted user name: \"user\" \"secret\""});
  EXPECT_EQ(errors("'alice' 'pw'\n"),
            Errors{"userlist.txt:1:1: expected a double-quoted user name: \"user\" \"secret\""});
}

TEST(AuthFile, UnterminatedUser) {
  EXPECT_EQ(errors("\"alice pw\n"), Errors{"userlist.txt:1:1: user name has no closing double quote"});
  EXPECT_EQ(errors("\n  \"alice\"\"\n"), Errors{"userlist.txt:2:3: user name has no closing double quote"});
}

TEST(AuthFile, MissingSecret) {
  EXPECT_EQ(errors("\"alice\"\n"),
            Errors{"userlist.txt:1:8: expected a double-quoted secret after the user name"});
  EXPECT_EQ(errors("\"alice\"   \n"),
            Errors{"userlist.txt:1:11: expected a double-quoted secret after the user name"});
  EXPECT_EQ(errors("\"alice\" pw\n"),
            Errors{"userlist.txt:1:9: expected a double-quoted secret after the user name"});
  EXPECT_EQ(errors("\"alice\"\r\n"),
            Errors{"userlist.txt:1:8: expected a double-quoted secret after the user name"});
}

TEST(AuthFile, UnterminatedSecret) {
  EXPECT_EQ(errors("\"alice\" \"pw\n"), Errors{"userlist.txt:1:9: secret has no closing double quote"});
  EXPECT_EQ(errors("\"a\" \"1\"\n\"bob\"\t \"pw\"\"\n"),
            Errors{"userlist.txt:2:8: secret has no closing double quote"});
}

TEST(AuthFile, EmptyUser) {
  EXPECT_EQ(errors("\"\" \"pw\"\n"), Errors{"userlist.txt:1:1: empty user name"});
  // An empty secret is a (useless) plain password; whether to accept it is the authenticator's business.
  const AuthFileResult r = parse_auth_file("\"alice\" \"\"\n", "u.txt");
  EXPECT_EQ(errors_of(r), Errors{});
  ASSERT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.entries[0].secret, "");
}

TEST(AuthFile, DuplicateUser) {
  const AuthFileResult r =
      parse_auth_file("\"alice\" \"a\"\n\"bob\" \"b\"\n  \"alice\" \"c\"\n", "userlist.txt");
  EXPECT_EQ(errors_of(r), Errors{"userlist.txt:3:3: user \"alice\" is listed twice"});
  // The first entry is kept; the rest of the file still parses.
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries[0].secret, "a");
  EXPECT_EQ(r.entries[1].user, "bob");
  // User names are case-sensitive, as PostgreSQL role names are.
  EXPECT_EQ(errors("\"alice\" \"a\"\n\"Alice\" \"b\"\n"), Errors{});
}

TEST(AuthFile, EveryErrorIsReportedAndGoodLinesKept) {
  const AuthFileResult r = parse_auth_file(
      "\"alice\" \"a\"\n"
      "bob \"b\"\n"
      "\"carol\n"
      "\"dave\"\n"
      "\"erin\" \"e\n"
      "\"\" \"f\"\n"
      "\"alice\" \"g\"\n"
      "\"frank\" \"h\"\n",
      "userlist.txt");
  EXPECT_EQ(errors_of(r), (Errors{
                              "userlist.txt:2:1: expected a double-quoted user name: \"user\" \"secret\"",
                              "userlist.txt:3:1: user name has no closing double quote",
                              "userlist.txt:4:7: expected a double-quoted secret after the user name",
                              "userlist.txt:5:8: secret has no closing double quote",
                              "userlist.txt:6:1: empty user name",
                              "userlist.txt:7:1: user \"alice\" is listed twice",
                          }));
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries[0].user, "alice");
  EXPECT_EQ(r.entries[1].user, "frank");
  EXPECT_EQ(r.entries[1].where.line, 8u);
}

TEST(AuthFile, LoadMissingFile) {
  const std::filesystem::path missing = std::filesystem::temp_directory_path() /
                                        ("pgw_unit_config_absent_" + std::to_string(::getpid())) / "u.txt";
  const AuthFileResult r = load_auth_file(missing);
  EXPECT_TRUE(r.entries.empty());
  EXPECT_EQ(errors_of(r), Errors{missing.string() + ":1:1: cannot read the auth file"});
}

TEST(AuthFile, LoadRealFile) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("pgw_unit_config_auth_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path file = dir / "userlist.txt";
  {
    std::ofstream out(file, std::ios::binary);
    out << "; users\r\n\"alice\" \"pw\"\r\n\"alice\" \"again\"\r\n";
  }
  const AuthFileResult r = load_auth_file(file);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.entries[0].secret, "pw");
  EXPECT_EQ(r.entries[0].where.file, file.string());
  EXPECT_EQ(r.entries[0].where.line, 2u);
  EXPECT_EQ(errors_of(r), Errors{file.string() + ":3:1: user \"alice\" is listed twice"});
}

}  // namespace
}  // namespace pgw::config
