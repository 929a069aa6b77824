// Setting names in SQL text; a client's settings and their key.
#include "settings.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

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

std::vector<std::pair<std::string, std::string>> entries(const SettingList& list) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : list)
    out.emplace_back(e.name, e.value);
  return out;
}

TEST(SettingList, KeepsOrderFoldsNamesAndReplacesInPlace) {
  SettingList list;
  EXPECT_TRUE(list.empty());
  list.put("DateStyle", "ISO, MDY");
  list.put("TimeZone", "UTC");
  list.put("application_name", "");
  list.put("TIMEZONE", "Europe/Berlin");  // the same setting, another case: replaced where it was
  list.put("datestyle", "German, DMY");
  using V = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(entries(list),
            (V{{"datestyle", "German, DMY"}, {"timezone", "Europe/Berlin"}, {"application_name", ""}}));
  EXPECT_EQ(list.find("TimeZone"), "Europe/Berlin");
  EXPECT_EQ(list.find("APPLICATION_NAME"), "");  // present, empty
  EXPECT_FALSE(list.find("search_path").has_value());
  EXPECT_FALSE(list.contains("timezon"));
}

TEST(SettingList, KeyIsEqualExactlyForEqualSettingsAndTail) {
  SettingList a, b;
  a.put("TimeZone", "UTC");
  a.put("client_encoding", "UTF8");
  b.put("timezone", "UTC");
  b.put("CLIENT_ENCODING", "UTF8");
  a.set_tail(std::string_view("search_path\0", 12));
  b.set_tail(std::string_view("search_path\0", 12));
  EXPECT_EQ(a.key(), b.key());
  b.put("client_encoding", "LATIN1");
  EXPECT_NE(a.key(), b.key());
  b.put("client_encoding", "UTF8");
  EXPECT_EQ(a.key(), b.key());
  // A value that grows or shrinks keeps the tail intact.
  a.put("timezone", "America/Argentina/Buenos_Aires");
  a.put("timezone", "UTC");
  EXPECT_EQ(a.key(), b.key());
  b.set_tail("");
  EXPECT_NE(a.key(), b.key());
  // A setting added after the tail goes before it.
  a.set_tail("");
  a.put("x", "1");
  b.put("x", "1");
  EXPECT_EQ(a.key(), b.key());
  EXPECT_FALSE(SettingList().key().empty());  // an empty key means "not known" on a server connection
}

TEST(SettingList, OddBytesInValuesStayInsideTheirEntry) {
  SettingList a;
  a.put("a", "\1");
  a.put("\1b", "v");
  a.set_tail("tail");
  using V = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(entries(a), (V{{"a", "\1"}, {"\1b", "v"}}));
  SettingList b;  // the same bytes split otherwise must not give the same key
  b.put("a", "\1");
  b.set_tail(std::string_view("\1b\0v\0tail", 9));
  EXPECT_NE(a.key(), b.key());
}

}  // namespace
}  // namespace pgw::proxy
