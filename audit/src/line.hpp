// Reading one audit line back (verify, and the writer continuing its chain at start-up): a strict JSON check.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pgw/audit/log.hpp"

namespace pgw::audit::detail {

struct ParsedLine {
  std::string_view hashed;  // the bytes the hash covers: everything before ,"hash":
  std::uint64_t seq = 0;
  std::string event;
  std::string instance;
  std::optional<Digest> prev;  // absent in checkpoint lines
  Digest hash{};
  std::optional<std::uint64_t> kept_from;  // checkpoint lines written with a file sink
};

// `line` without its '\n'. nullopt with `error` set when it is not an audit record or checkpoint line.
std::optional<ParsedLine> parse_line(std::string_view line, std::string& error);

}  // namespace pgw::audit::detail
