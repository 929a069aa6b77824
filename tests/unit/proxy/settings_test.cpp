// Setting names in SQL text.
#include "settings.hpp"

#include <gtest/gtest.h>

namespace pgw::proxy {
namespace {

TEST(Settings, MentionsStringSettingsAnywhereInAnyCase) {
  for (const char* sql :
       {"SET standard_conforming_strings = off", "set STANDARD_Conforming_STRINGS to on",
        "SELECT set_config('client_encoding', 'LATIN1', false)", "SET Client_Encoding TO 'SJIS'",
        "select 1; select * from my_client_encodings", "_client_encoding", "client_encoding_"}) {
    EXPECT_TRUE(mentions_string_settings(sql)) << sql;
  }
  for (const char* sql :
       {"", "_", "__", "a_b_c", "client_encodin", "lient_encoding", "standard_conforming_string",
        "standard__conforming_strings", "standard conforming_strings", "client encoding",
        "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 2"}) {
    EXPECT_FALSE(mentions_string_settings(sql)) << sql;
  }
}

}  // namespace
}  // namespace pgw::proxy
