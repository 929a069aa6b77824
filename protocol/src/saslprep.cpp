// SASLprep (RFC 4013) through ICU's stringprep profile, with PostgreSQL's fallbacks (common/saslprep.c): a
// password that is pure ASCII, not UTF-8, or prohibited by the profile is used exactly as given.
#include <unicode/usprep.h>
#include <unicode/ustring.h>

#include <algorithm>
#include <vector>

#include "pgw/protocol/scram.hpp"

namespace pgw::protocol::scram {

namespace {

// ICU caches and shares the profile; preparing with it is thread-safe.
const UStringPrepProfile* saslprep_profile() {
  static const UStringPrepProfile* profile = [] {
    UErrorCode status = U_ZERO_ERROR;
    UStringPrepProfile* p = usprep_openByType(USPREP_RFC4013_SASLPREP, &status);
    return U_SUCCESS(status) ? p : nullptr;
  }();
  return profile;
}

}  // namespace

std::string saslprep(std::string_view password) {
  std::string original(password);
  bool ascii = std::all_of(password.begin(), password.end(),
                           [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  const UStringPrepProfile* profile = saslprep_profile();
  if (ascii || profile == nullptr || password.size() > max_message_length) return original;
  UErrorCode status = U_ZERO_ERROR;
  std::int32_t units = 0;
  u_strFromUTF8(nullptr, 0, &units, password.data(), static_cast<std::int32_t>(password.size()), &status);
  if (status != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(status)) return original;  // not UTF-8
  std::vector<UChar> in(static_cast<std::size_t>(units) + 1);
  status = U_ZERO_ERROR;
  u_strFromUTF8(in.data(), static_cast<std::int32_t>(in.size()), &units, password.data(),
                static_cast<std::int32_t>(password.size()), &status);
  if (U_FAILURE(status)) return original;
  // NFKC can grow a string; 18 is Unicode's largest expansion factor.
  std::vector<UChar> prepared(static_cast<std::size_t>(units) * 18 + 1);
  std::int32_t prepared_units =
      usprep_prepare(profile, in.data(), units, prepared.data(), static_cast<std::int32_t>(prepared.size()),
                     USPREP_DEFAULT, nullptr, &status);
  // Prohibited output, unassigned code points or a bidi violation: PostgreSQL keeps the password as is.
  if (U_FAILURE(status) || prepared_units == 0) return original;
  std::string out(static_cast<std::size_t>(prepared_units) * 3, '\0');
  std::int32_t bytes = 0;
  u_strToUTF8(out.data(), static_cast<std::int32_t>(out.size()), &bytes, prepared.data(), prepared_units,
              &status);
  if (U_FAILURE(status)) return original;
  out.resize(static_cast<std::size_t>(bytes));
  return out;
}

}  // namespace pgw::protocol::scram
