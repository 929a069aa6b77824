// Leading-keyword detection against PostgreSQL's scanner: comments, strings, quoted identifiers and dollar
// quoting never hide or fake a statement start.
#include "pgw/audit/sql.hpp"

#include <gtest/gtest.h>

namespace {

using pgw::audit::has_statement_starting_with;
using pgw::audit::Leading;

TEST(LeadingKeyword, Listen) {
  EXPECT_TRUE(has_statement_starting_with("LISTEN chan", Leading::listen));
  EXPECT_TRUE(has_statement_starting_with("  listen chan;", Leading::listen));
  EXPECT_TRUE(has_statement_starting_with("SELECT 1; LiStEn chan", Leading::listen));
  EXPECT_TRUE(has_statement_starting_with("/* c */ -- x\n LISTEN chan", Leading::listen));
  EXPECT_TRUE(has_statement_starting_with("/* nested /* comment */ still */ LISTEN chan", Leading::listen));
}

TEST(LeadingKeyword, ListenInsideOtherTokensDoesNotCount) {
  EXPECT_FALSE(has_statement_starting_with("SELECT 'LISTEN x'", Leading::listen));
  EXPECT_FALSE(has_statement_starting_with("SELECT 1 -- ; LISTEN x", Leading::listen));
  EXPECT_FALSE(has_statement_starting_with("SELECT $$; LISTEN x$$", Leading::listen));
  EXPECT_FALSE(has_statement_starting_with("SELECT $tag$ ; LISTEN x $tag$", Leading::listen));
  EXPECT_FALSE(has_statement_starting_with("SELECT \"listen\" FROM t", Leading::listen));
  EXPECT_FALSE(has_statement_starting_with("SELECT E'\\'; LISTEN x'", Leading::listen));
  EXPECT_FALSE(has_statement_starting_with("UNLISTEN chan", Leading::listen));
  EXPECT_FALSE(has_statement_starting_with("NOTIFY listen", Leading::listen));
  EXPECT_FALSE(has_statement_starting_with("SELECT 1", Leading::listen));
}

TEST(LeadingKeyword, Begin) {
  EXPECT_TRUE(has_statement_starting_with("BEGIN", Leading::begin));
  EXPECT_TRUE(has_statement_starting_with("begin isolation level serializable", Leading::begin));
  EXPECT_TRUE(has_statement_starting_with("START TRANSACTION", Leading::begin));
  EXPECT_TRUE(has_statement_starting_with("SELECT 1; BEGIN; SELECT 2", Leading::begin));
  EXPECT_FALSE(has_statement_starting_with("SELECT 'begin'", Leading::begin));
  EXPECT_FALSE(has_statement_starting_with(
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END", Leading::begin));
  EXPECT_FALSE(has_statement_starting_with("COMMIT", Leading::begin));
}

TEST(LeadingKeyword, UnscannableTextFindsNothing) {
  EXPECT_FALSE(has_statement_starting_with("SELECT 'unterminated; LISTEN x", Leading::listen));
}

TEST(Syntax, ParsesAcceptsWhatPostgresAccepts) {
  EXPECT_TRUE(pgw::audit::parses("SELECT 1"));
  EXPECT_TRUE(pgw::audit::parses("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"));
  EXPECT_TRUE(pgw::audit::parses("SELECT * FROM no_such_table"));  // syntax only
  EXPECT_FALSE(pgw::audit::parses("SELEC 1"));
  EXPECT_FALSE(pgw::audit::parses("SELECT 'unterminated"));
}

}  // namespace
