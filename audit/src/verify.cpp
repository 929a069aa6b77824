// `pgwarden audit verify`: recompute every hash, check seq and prev across files and instances, and
// checkpoints.
#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <unordered_map>

#include "line.hpp"
#include "pgw/audit/log.hpp"

namespace pgw::audit {

namespace detail {

namespace {

// A strict JSON reader (RFC 8259) for one object per line: it checks the syntax of everything and keeps the
// top-level keys the chain needs.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : t_(text) {}

  bool object(ParsedLine& out, std::string& error) {
    if (!expect('{')) return fail(error, "a record must be a JSON object");
    std::set<std::string, std::less<>> seen;
    bool have_seq = false, have_event = false, have_instance = false, have_hash = false;
    std::string last_key, before_last;
    if (peek() == '}') return fail(error, "empty object");
    for (;;) {
      std::string key;
      if (!string(key)) return fail(error, "invalid key at byte " + std::to_string(i_));
      if (!seen.insert(key).second) return fail(error, "key \"" + key + "\" appears twice");
      if (!expect(':')) return fail(error, "':' expected at byte " + std::to_string(i_));
      if (key == "seq") {
        if (!uint(out.seq)) return fail(error, "seq must be a non-negative integer");
        have_seq = true;
      } else if (key == "event") {
        if (!string(out.event)) return fail(error, "event must be a string");
        have_event = true;
      } else if (key == "instance") {
        if (!string(out.instance)) return fail(error, "instance must be a string");
        have_instance = true;
      } else if (key == "kept_from") {
        std::uint64_t k = 0;
        if (!uint(k)) return fail(error, "kept_from must be a non-negative integer");
        out.kept_from = k;
      } else if (key == "prev" || key == "hash") {
        std::string hex;
        if (!string(hex)) return fail(error, key + " must be a string");
        auto d = from_hex(hex);
        if (!d) return fail(error, key + " must be 64 lower-case hex digits");
        if (key == "prev") {
          out.prev = *d;
        } else {
          out.hash = *d;
          have_hash = true;
        }
      } else if (!value(0)) {
        return fail(error, "invalid value of \"" + key + "\" at byte " + std::to_string(i_));
      }
      before_last = std::move(last_key);
      last_key = std::move(key);
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (!expect('}')) return fail(error, "',' or '}' expected at byte " + std::to_string(i_));
      break;
    }
    skip_ws();
    if (i_ != t_.size()) return fail(error, "bytes after the record's closing '}'");
    if (!have_seq || !have_event || !have_instance || !have_hash) {
      return fail(error, "a record needs seq, event, instance and hash");
    }
    if (last_key != "hash") return fail(error, "hash must be the last key");
    if (out.event != "checkpoint" && (!out.prev || before_last != "prev")) {
      return fail(error, "prev must come just before hash");
    }
    return true;
  }

 private:
  static bool fail(std::string& error, std::string message) {
    error = std::move(message);
    return false;
  }
  void skip_ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\r' || t_[i_] == '\n'))
      ++i_;
  }
  char peek() {
    skip_ws();
    return i_ < t_.size() ? t_[i_] : '\0';
  }
  bool expect(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  bool hex4(unsigned& v) {
    if (t_.size() - i_ < 4) return false;
    v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = t_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    return true;
  }
  // Decodes into out; \u0080-\u00ff become the raw byte (the writer's encoding of bytes that are not UTF-8).
  bool string(std::string& out) {
    if (peek() != '"') return false;
    ++i_;
    out.clear();
    while (i_ < t_.size()) {
      const auto c = static_cast<unsigned char>(t_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (i_ >= t_.size()) return false;
      const char e = t_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = 0;
          if (!hex4(cp)) return false;
          if (cp < 0x100) {
            out += static_cast<char>(cp);
          } else if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo = 0;
            if (t_.substr(i_, 2) != "\\u") return false;
            i_ += 2;
            if (!hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            put_utf8(out, 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00));
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return false;
          } else {
            put_utf8(out, cp);
          }
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }
  bool uint(std::uint64_t& v) {
    skip_ws();
    const std::size_t start = i_;
    v = 0;
    while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') {
      const auto d = static_cast<std::uint64_t>(t_[i_] - '0');
      if (v > (UINT64_MAX - d) / 10) return false;
      v = v * 10 + d;
      ++i_;
    }
    if (i_ == start) return false;
    return !(i_ - start > 1 && t_[start] == '0');
  }
  bool number() {
    skip_ws();
    if (i_ < t_.size() && t_[i_] == '-') ++i_;
    auto digits = [&] {
      const std::size_t s = i_;
      while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9')
        ++i_;
      return i_ - s;
    };
    const std::size_t int_start = i_;
    const std::size_t n = digits();
    if (n == 0 || (n > 1 && t_[int_start] == '0')) return false;
    if (i_ < t_.size() && t_[i_] == '.') {
      ++i_;
      if (digits() == 0) return false;
    }
    if (i_ < t_.size() && (t_[i_] == 'e' || t_[i_] == 'E')) {
      ++i_;
      if (i_ < t_.size() && (t_[i_] == '+' || t_[i_] == '-')) ++i_;
      if (digits() == 0) return false;
    }
    return true;
  }
  bool literal(std::string_view word) {
    if (t_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  bool value(int depth) {
    if (depth > 16) return false;
    const char c = peek();
    std::string ignored;
    switch (c) {
      case '"':
        return string(ignored);
      case 'n':
        return literal("null");
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case '[':
        ++i_;
        if (peek() == ']') {
          ++i_;
          return true;
        }
        for (;;) {
          if (!value(depth + 1)) return false;
          if (peek() == ',') {
            ++i_;
            continue;
          }
          return expect(']');
        }
      case '{':
        ++i_;
        if (peek() == '}') {
          ++i_;
          return true;
        }
        for (;;) {
          if (!string(ignored) || !expect(':') || !value(depth + 1)) return false;
          if (peek() == ',') {
            ++i_;
            continue;
          }
          return expect('}');
        }
      default:
        return number();
    }
  }

  std::string_view t_;
  std::size_t i_ = 0;
};

}  // namespace

std::optional<ParsedLine> parse_line(std::string_view line, std::string& error) {
  // A '"' inside a string is always escaped, so the last ,"hash":" is the key, never string content.
  constexpr std::string_view marker = ",\"hash\":\"";
  const auto at = line.rfind(marker);
  if (at == std::string_view::npos) {
    error = "not an audit record: no \"hash\" key";
    return std::nullopt;
  }
  ParsedLine out;
  out.hashed = line.substr(0, at);
  JsonReader reader(line);
  if (!reader.object(out, error)) return std::nullopt;
  if (line.size() != at + marker.size() + 64 + 2) {
    error = "hash must be the last key, written as \"hash\":\"<64 hex digits>\"}";
    return std::nullopt;
  }
  return out;
}

}  // namespace detail

namespace {

struct Where {
  std::filesystem::path file;
  std::uint64_t line = 0;
};

struct RecordRef {
  std::uint64_t line = 0;
  std::uint64_t seq = 0;
  Digest hash{};
  Digest prev{};
  bool hash_ok = true;
};

struct FileScan {
  std::filesystem::path path;
  std::string instance;
  std::vector<RecordRef> records;
  std::optional<VerifyProblem> problem;  // the first line that is not a record (or a torn last line)
};

struct Witness {
  std::uint64_t seq = 0;
  Digest hash{};
  Where where;
  std::optional<std::uint64_t> kept_from;
};

// A regular file only (a FIFO or a device put in a log's place would hang or exhaust memory), read whole in
// one allocation of its size. "" on success, else why not.
std::string read_file(const std::filesystem::path& p, std::string& out) {
  std::error_code ec;
  const auto status = std::filesystem::status(p, ec);
  if (ec) return ec.message();
  if (!std::filesystem::is_regular_file(status)) return "not a regular file";
  const auto size = std::filesystem::file_size(p, ec);
  if (ec) return ec.message();
  std::ifstream in(p, std::ios::binary);
  if (!in) return "cannot open it";
  out.resize(size);
  in.read(out.data(), static_cast<std::streamsize>(size));
  if (static_cast<std::uintmax_t>(in.gcount()) != size) return "it changed size while being read";
  return {};
}

// Calls f(line_number, line, complete) for each line; `complete` is false for a last line with no '\n'.
template <class F>
void for_each_line(std::string_view text, F f) {
  std::uint64_t n = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto nl = text.find('\n', pos);
    ++n;
    if (nl == std::string_view::npos) {
      f(n, text.substr(pos), false);
      return;
    }
    if (!f(n, text.substr(pos, nl - pos), true)) return;
    pos = nl + 1;
  }
}

VerifyProblem problem_at(const std::filesystem::path& file, std::uint64_t line,
                         std::optional<std::uint64_t> seq, std::string message) {
  return VerifyProblem{file, line, seq, std::move(message)};
}

}  // namespace

std::string VerifyProblem::to_string() const {
  std::string out = file.string();
  if (line != 0) out += ":" + std::to_string(line);
  out += ": ";
  if (seq) out += "seq " + std::to_string(*seq) + ": ";
  out += message;
  return out;
}

VerifyResult verify(const std::vector<std::filesystem::path>& files, const VerifyOptions& options) {
  VerifyResult result;
  const Hasher hasher(options.hmac_key.value_or(std::string{}));
  const bool keyed = options.hmac_key.has_value() && !options.hmac_key->empty();
  std::map<std::string, std::vector<Witness>> witnesses;  // by instance
  std::vector<FileScan> scans;

  for (const auto& path : files) {
    std::string text;
    if (auto why = read_file(path, text); !why.empty()) {
      result.problem = problem_at(path, 0, std::nullopt, "cannot read the file: " + why);
      return result;
    }
    FileScan scan;
    scan.path = path;
    for_each_line(text, [&](std::uint64_t n, std::string_view line, bool complete) {
      auto stop = [&](std::optional<std::uint64_t> seq, std::string message) {
        scan.problem = problem_at(path, n, seq, std::move(message));
        return false;
      };
      if (!complete) {
        return stop(
            std::nullopt,
            "the last line has no newline (a torn write or an edit: at its next start pgwarden cuts a "
            "partial line off and ends a whole record)");
      }
      std::string error;
      auto parsed = detail::parse_line(line, error);
      if (!parsed) return stop(std::nullopt, "not a valid audit record: " + error);
      // Checkpoint lines in a log (a captured stdout sink holds them) are no evidence: whoever edits the log
      // can write them. Only --checkpoints files, kept elsewhere, witness.
      if (parsed->event == "checkpoint") return true;
      if (!event_from_string(parsed->event))
        return stop(parsed->seq, "unknown event \"" + parsed->event + "\"");
      if (scan.records.empty()) {
        scan.instance = parsed->instance;
      } else if (parsed->instance != scan.instance) {
        // audit.instance changed at a restart: the file goes on with the new name, and from here its records
        // are that instance's chain (starting after the old one's last seq).
        scans.push_back(std::move(scan));
        scan = FileScan{};
        scan.path = path;
        scan.instance = parsed->instance;
      }
      RecordRef r;
      r.line = n;
      r.seq = parsed->seq;
      r.hash = parsed->hash;
      r.prev = parsed->prev.value_or(Digest{});
      Digest h{};
      r.hash_ok = hasher.hash(parsed->hashed, h) && h == parsed->hash;
      scan.records.push_back(r);
      return true;
    });
    if (scan.records.empty() && scan.problem) {
      result.problem = scan.problem;
      return result;
    }
    if (!scan.records.empty()) scans.push_back(std::move(scan));
  }

  // Chains: files grouped by instance, ordered by the seq of their first record.
  std::map<std::string, std::vector<const FileScan*>> chains;
  for (const auto& s : scans)
    chains[s.instance].push_back(&s);
  std::map<std::string, std::unordered_map<std::uint64_t, std::pair<const FileScan*, const RecordRef*>>>
      index;
  for (auto& entry : chains) {
    const std::string& instance = entry.first;
    auto& chain_files = entry.second;
    auto& by_seq = index[instance];
    std::sort(chain_files.begin(), chain_files.end(), [](const FileScan* a, const FileScan* b) {
      return a->records.front().seq < b->records.front().seq;
    });
    ChainSummary summary;
    summary.instance = instance;
    std::optional<std::uint64_t> expected;
    Digest prev{};
    const FileScan* previous_file = nullptr;
    auto fail = [&](VerifyProblem p) {
      result.chains.push_back(summary);
      result.problem = std::move(p);
      return result;
    };
    for (const FileScan* f : chain_files) {
      summary.files.push_back(f->path);
      if (previous_file != nullptr && f->records.front().seq == previous_file->records.front().seq) {
        return fail(problem_at(f->path, f->records.front().line, f->records.front().seq,
                               "this file starts at the same record as " + previous_file->path.string() +
                                   " (the same file given twice?)"));
      }
      bool first_in_file = true;
      for (const RecordRef& r : f->records) {
        if (f->problem && f->problem->line < r.line) return fail(*f->problem);
        if (!r.hash_ok) {
          std::string why = "hash does not match the record: the line was changed";
          if (!keyed && !expected) {
            why =
                "hash is not the SHA-256 of the line: if this log was written with audit.hmac_key_file it is "
                "an HMAC chain and cannot be checked without --hmac-key-file; otherwise the line was changed";
          } else if (!keyed) {
            why += " (no --hmac-key-file given: checked as a SHA-256 chain)";
          }
          return fail(problem_at(f->path, r.line, r.seq, why));
        }
        if (!expected) {
          const bool zero_prev = r.prev == Digest{};
          if (r.seq == 0) return fail(problem_at(f->path, r.line, r.seq, "seq starts at 1"));
          if (r.seq == 1 && !zero_prev) {
            return fail(
                problem_at(f->path, r.line, r.seq, "the first record of a chain must have prev 0...0"));
          }
          if (r.seq > 1 && zero_prev) {
            return fail(problem_at(f->path, r.line, r.seq, "prev 0...0 is only for seq 1"));
          }
          summary.first_seq = r.seq;
          summary.starts_after_rotation = r.seq > 1;
        } else if (r.seq != *expected) {
          std::string why = "expected seq " + std::to_string(*expected) + ", found " + std::to_string(r.seq);
          if (first_in_file && r.seq > *expected) {
            why += ": records " + std::to_string(*expected) + ".." + std::to_string(r.seq - 1) +
                   " are missing between " + previous_file->path.string() +
                   " and this file (a rotated file "
                   "was deleted?)";
          } else {
            why += " (a record was deleted, moved or inserted here)";
          }
          return fail(problem_at(f->path, r.line, *expected, why));
        } else if (r.prev != prev) {
          return fail(problem_at(f->path, r.line, r.seq,
                                 "prev is not the hash of seq " + std::to_string(r.seq - 1) +
                                     " (the chain was re-linked here)"));
        }
        expected = r.seq + 1;
        prev = r.hash;
        ++summary.records;
        summary.last_seq = r.seq;
        by_seq[r.seq] = {f, &r};
        first_in_file = false;
      }
      if (f->problem) return fail(*f->problem);
      previous_file = f;
    }

    // Checkpoints and other sinks' lines for this instance are gathered below; check them in seq order.
    result.chains.push_back(std::move(summary));
  }

  // Witnesses from --checkpoints files: checkpoint lines and chained lines (seq + hash of a record).
  for (const auto& path : options.checkpoints) {
    std::string text;
    if (auto why = read_file(path, text); !why.empty()) {
      result.problem = problem_at(path, 0, std::nullopt, "cannot read the checkpoint file: " + why);
      return result;
    }
    std::size_t found = 0;
    for_each_line(text, [&](std::uint64_t n, std::string_view line, bool) {
      const auto brace = line.find('{');  // a syslog export has the RFC 5424 header before the JSON
      if (brace == std::string_view::npos) return true;
      std::string error;
      auto parsed = detail::parse_line(line.substr(brace), error);
      if (!parsed) return true;  // not ours: syslog carries other programs' lines too
      witnesses[parsed->instance].push_back({parsed->seq, parsed->hash, {path, n}, parsed->kept_from});
      ++found;
      return true;
    });
    if (found == 0) {
      result.problem = problem_at(path, 0, std::nullopt, "no checkpoint or audit lines in this file");
      return result;
    }
  }

  for (auto& entry : witnesses) {
    const std::string& instance = entry.first;
    auto& list = entry.second;
    std::sort(list.begin(), list.end(), [](const Witness& a, const Witness& b) { return a.seq < b.seq; });
    auto chain = std::find_if(result.chains.begin(), result.chains.end(),
                              [&](const ChainSummary& c) { return c.instance == instance; });
    if (chain == result.chains.end()) {
      const Witness& w = list.front();
      result.problem =
          problem_at(w.where.file, w.where.line, w.seq,
                     "checkpoint of instance \"" + instance + "\" but no log file of it was given");
      return result;
    }
    const FileScan* last_file = nullptr;
    for (const auto& s : scans) {
      if (s.instance == instance &&
          (last_file == nullptr || s.records.front().seq > last_file->records.front().seq)) {
        last_file = &s;
      }
    }
    // The oldest seq pgwarden's files still held at the newest checkpoint (it only grows): the kept files
    // must reach back that far, or lines or whole files were deleted by someone other than rotation.
    const Witness* kept = nullptr;
    for (const Witness& w : list) {
      if (w.kept_from && (kept == nullptr || *w.kept_from >= *kept->kept_from)) kept = &w;
    }
    if (kept != nullptr) {
      // The files' first record, whichever instance wrote it (a file goes on under a renamed instance).
      const FileScan* first = nullptr;
      for (const auto& s : scans) {
        if (s.path == chain->files.front() &&
            (first == nullptr || s.records.front().seq < first->records.front().seq)) {
          first = &s;
        }
      }
      const std::uint64_t have = first->records.front().seq;
      if (have > *kept->kept_from) {
        result.problem = problem_at(
            first->path, first->records.front().line, have,
            "records " + std::to_string(*kept->kept_from) + ".." + std::to_string(have - 1) +
                " are missing: " + kept->where.file.string() + ":" + std::to_string(kept->where.line) +
                " says pgwarden's files still held them (the oldest file, or the first lines of a file, were "
                "deleted; or that checkpoint export is older than the files given)");
        return result;
      }
    }
    for (const Witness& w : list) {
      if (w.seq == 0 || w.seq < chain->first_seq) {
        ++chain->checkpoints_older;  // before any record, or in a file rotated away (rotate_keep)
        continue;
      }
      if (w.seq > chain->last_seq) {
        result.problem =
            problem_at(last_file->path, last_file->records.back().line + 1, chain->last_seq + 1,
                       "missing: the chain ends at seq " + std::to_string(chain->last_seq) + " but " +
                           w.where.file.string() + ":" + std::to_string(w.where.line) + " names seq " +
                           std::to_string(w.seq) + " (the tail was cut off or the newest file deleted)");
        return result;
      }
      const auto found = index[instance].find(w.seq);
      if (found == index[instance].end()) continue;
      const FileScan* f = found->second.first;
      const RecordRef* r = found->second.second;
      if (r->hash != w.hash) {
        result.problem = problem_at(f->path, r->line, r->seq,
                                    "hash differs from " + w.where.file.string() + ":" +
                                        std::to_string(w.where.line) + " (the chain was rewritten)");
        return result;
      }
      ++chain->checkpoints_matched;
    }
  }
  return result;
}

}  // namespace pgw::audit
