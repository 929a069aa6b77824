// docs/CONFIG.md is the key table printed by `pgwarden --config-reference`; this keeps the two equal.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "pgw/config/config.hpp"

TEST(ConfigReference, DocsMatchTheKeyTable) {
  std::ifstream in(std::string(PGW_SOURCE_DIR) + "/docs/CONFIG.md");
  ASSERT_TRUE(in) << "docs/CONFIG.md is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  std::string table = pgw::config::key_reference_markdown();
  auto at = doc.find("| key |");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(doc.substr(at), table) << "regenerate docs/CONFIG.md with `pgwarden --config-reference`";
}
