// Client settings: startup parameters (and `options`' -c switches) as name/value pairs, the ones PostgreSQL
// reports with ParameterStatus, and the SET statements that carry them to a pooled server connection.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "pgw/protocol/messages.hpp"

namespace pgw::proxy {

struct Setting;

// Startup parameters other than user, database and replication, with `options` ("-c name=value",
// "--name=value", backslash escapes a space) expanded. False with `error` set for options PostgreSQL would
// refuse.
bool settings_from_startup(const protocol::StartupMessage& startup, std::vector<Setting>& out,
                           std::string& error);

// GUC names are case-insensitive.
bool same_name(std::string_view a, std::string_view b) noexcept;
Setting* find_setting(std::vector<Setting>& settings, std::string_view name) noexcept;
const Setting* find_setting(const std::vector<Setting>& settings, std::string_view name) noexcept;
void put_setting(std::vector<Setting>& settings, std::string_view name, std::string_view value);

// Whether the text names standard_conforming_strings or client_encoding (any case): a statement that may
// change how the server reads string literals.
bool mentions_string_settings(std::string_view sql);

// ASCII case folding, as PostgreSQL folds parameter names.
constexpr char fold_case(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Parameters PostgreSQL reports with ParameterStatus and pgwarden keeps per client (plus
// track_extra_parameters).
bool is_tracked(std::string_view name, const std::vector<std::string>& extra) noexcept;

// `pg_catalog.set_config(E'name', E'value', false)`, comma-separated, for one SELECT: set_config parses the
// value as a startup option or the config file would (a list such as search_path = 'a,b' stays a list), and
// nothing in the quoted name or value can end the statement.
void append_set(std::string& select_list, std::string_view name, std::string_view value);
// The statement name of a simple query that is exactly "DEALLOCATE [PREPARE] name [;]" (name plain or
// double-quoted, case folded as PostgreSQL folds it), else "" (also for DEALLOCATE ALL).
std::string_view deallocate_target(std::string_view sql) noexcept;

// `RESET "name";`
void append_reset(std::string& sql, std::string_view name);

}  // namespace pgw::proxy
