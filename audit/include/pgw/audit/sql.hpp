// SQL text, read with PostgreSQL 15's own scanner (libpg_query): the first keyword of each statement of a
// simple-query or Parse text, for the statements pooling must refuse.
#pragma once

#include <string_view>

namespace pgw::audit {

// Keywords a statement can start with that matter here.
enum class Leading : unsigned char { listen, begin };

// True if some top-level statement in `sql` starts with `keyword` (BEGIN also means START TRANSACTION).
// Comments, string literals, quoted identifiers and dollar-quoted bodies are the scanner's business, so a
// "listen" inside any of them never matches. A cheap case-insensitive search decides first whether the
// scanner is worth running (2-9 us per statement): almost every statement skips it. Texts over 256 kB are not
// scanned (false): the scanner's memory grows to many times the text. What a refusal would have caught is
// then caught later (a notification in transaction pooling closes its connection; a transaction left open in
// statement pooling ends the session).
bool has_statement_starting_with(std::string_view sql, Leading keyword);

// True if PostgreSQL 15's grammar accepts `sql` (raw parse: syntax only, no catalog lookups); false for a
// text over 256 kB, which is then left to the server.
bool parses(std::string_view sql);

}  // namespace pgw::audit
