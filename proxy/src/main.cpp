// Command-line entry: parse arguments (Boost.Program_options), check or run.
#include "pgw/proxy/main.hpp"

#include <boost/program_options.hpp>

#include <unistd.h>

#include <array>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <vector>

#include "handover.hpp"
#include "log.hpp"
#include "pgw/audit/log.hpp"
#include "pgw/config/pgbouncer_import.hpp"
#include "runtime.hpp"
#include "server.hpp"

namespace pgw::proxy {

namespace po = boost::program_options;

namespace {

constexpr const char* usage_text =
    "pgwarden: a TLS-terminating PostgreSQL connection proxy and pooler with an audit log\n\n"
    "Usage:\n"
    "  pgwarden --config FILE            run in the foreground (logs on stderr)\n"
    "  pgwarden --config FILE --check    validate the config and every file it names\n"
    "  pgwarden --config FILE --takeover rolling restart: take the listeners of the pgwarden running with\n"
    "                                    this config (proxy.handover_socket); it drains and exits\n"
    "  pgwarden --config-reference       print the configuration key table (Markdown)\n"
    "  pgwarden --version | --help\n"
    "  pgwarden audit verify [--hmac-key-file KEY] [--checkpoints FILE]... LOG...\n"
    "                                    check audit logs' hash chains (rotated files, several instances)\n"
    "  pgwarden import-pgbouncer PGBOUNCER_INI [USERLIST]\n"
    "                                    print the equivalent TOML; keys not taken over go to stderr\n\n"
    "Signals: SIGHUP reloads config, auth file and certificates; SIGTERM/SIGINT drain (a second one exits "
    "now).\n";

// Loads and validates the config and every file it names; prints FILE:LINE:COL problems to stderr.
std::shared_ptr<const Runtime> load_everything(const std::string& path) {
  auto loaded = config::load(path);
  if (!loaded.config) {
    for (const auto& d : loaded.diagnostics)
      std::cerr << d.to_string() << "\n";
    return nullptr;
  }
  auto built = build_runtime(std::make_shared<const config::Config>(std::move(*loaded.config)));
  for (const auto& d : built.diagnostics)
    std::cerr << d.to_string() << "\n";
  return built.runtime;
}

constexpr const char* audit_verify_usage =
    "Usage: pgwarden audit verify [--hmac-key-file KEY] [--checkpoints FILE]... LOG...\n"
    "  LOG...               audit log files: a rotated set and/or several instances' logs, any order\n"
    "  --hmac-key-file KEY  the audit.hmac_key_file the logs were written with (an HMAC chain needs it)\n"
    "  --checkpoints FILE   lines of another sink (stdout capture, syslog export): detects a cut tail\n"
    "                       or a deleted newest file; repeat for several files\n"
    "Exit 0: every chain verified (record counts printed); 1: the first broken record is named.\n";

// `pgwarden audit verify`: exit 0 with the record count per chain, 1 naming the first broken record.
int audit_verify_main(int argc, char** argv) {
  po::options_description opts("audit verify options");
  opts.add_options()("hmac-key-file", po::value<std::string>(), "HMAC key file")(
      "checkpoints", po::value<std::vector<std::string>>()->composing(), "checkpoint file (repeatable)")(
      "log", po::value<std::vector<std::string>>(), "audit log file")("help,h", "print this help");
  po::positional_options_description positional;
  positional.add("log", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "pgwarden audit verify: " << e.what() << "\n\n" << audit_verify_usage;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << audit_verify_usage;
    return 0;
  }
  if (!vm.count("log")) {
    std::cerr << "pgwarden audit verify: name at least one audit log file\n\n" << audit_verify_usage;
    return 2;
  }
  audit::VerifyOptions options;
  if (vm.count("hmac-key-file")) {
    std::string error;
    auto key = config::read_key_file(vm["hmac-key-file"].as<std::string>(), error);
    if (!key) {
      std::cerr << "pgwarden audit verify: --hmac-key-file: " << error << "\n";
      return 2;
    }
    options.hmac_key = std::move(*key);
  }
  if (vm.count("checkpoints")) {
    for (const auto& f : vm["checkpoints"].as<std::vector<std::string>>())
      options.checkpoints.emplace_back(f);
  }
  std::vector<std::filesystem::path> files;
  for (const auto& f : vm["log"].as<std::vector<std::string>>())
    files.emplace_back(f);
  const audit::VerifyResult result = audit::verify(files, options);
  for (const auto& c : result.chains) {
    std::cout << "instance \"" << c.instance << "\": " << c.records << " records, seq " << c.first_seq << ".."
              << c.last_seq << " in " << c.files.size() << (c.files.size() == 1 ? " file" : " files");
    if (c.starts_after_rotation) std::cout << " (starts after older files were rotated away)";
    if (!options.checkpoints.empty() || c.checkpoints_matched + c.checkpoints_older > 0) {
      std::cout << "; " << c.checkpoints_matched << " checkpoints matched";
      if (c.checkpoints_older > 0) std::cout << ", " << c.checkpoints_older << " older than the kept files";
    }
    std::cout << "\n";
  }
  if (!result.ok()) {
    std::cerr << "pgwarden audit verify: first broken record: " << result.problem->to_string() << "\n";
    return 1;
  }
  if (result.chains.empty()) {
    std::cerr << "pgwarden audit verify: no audit records in the given files\n";
    return 1;
  }
  std::cout << (options.hmac_key ? "HMAC-SHA-256" : "SHA-256") << " chains verified: " << result.chains.size()
            << "\n";
  // What a pass proves, said where it is read (exit status unchanged).
  if (!options.hmac_key) {
    std::cerr
        << "pgwarden audit verify: note: without --hmac-key-file the chain is plain SHA-256, which anyone "
           "who can edit the files can recompute: this shows the files are intact, not untampered\n";
  }
  if (options.checkpoints.empty()) {
    std::cerr << "pgwarden audit verify: note: without --checkpoints a cut tail or a deleted oldest file "
                 "cannot be seen\n";
  }
  return 0;
}

int audit_verify(int argc, char** argv) {
  try {
    return audit_verify_main(argc, argv);
  } catch (const std::exception& e) {  // out of memory, an unreadable argument: not a broken chain
    std::cerr << "pgwarden audit verify: " << e.what() << "\n";
    return 2;
  }
}

constexpr const char* import_pgbouncer_usage =
    "Usage: pgwarden import-pgbouncer PGBOUNCER_INI [USERLIST]\n"
    "  Prints the equivalent pgwarden TOML on stdout; every PgBouncer key it does not take over is\n"
    "  listed on stderr as FILE:LINE: key: why. USERLIST (PgBouncer's auth_file) becomes auth.file,\n"
    "  its path written as given: write the TOML into the directory you run this from, or give\n"
    "  absolute paths.\n"
    "Exit 0: converted; 1: a file cannot be read or parsed (FILE:LINE:COL: message); 2: usage error.\n";

// A whole text file of at most `limit` bytes, or nullopt with `error` saying why.
std::optional<std::string> read_text_file(const std::filesystem::path& path, std::size_t limit,
                                          std::string& error) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    error = "No such file or directory";
    return std::nullopt;
  }
  if (std::filesystem::is_directory(path, ec)) {
    error = "Is a directory";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "Permission denied or unreadable";
    return std::nullopt;
  }
  std::string text;
  std::array<char, 65536> chunk{};
  while (in && text.size() <= limit) {
    in.read(chunk.data(), chunk.size());
    text.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) {
    error = "read error";
    return std::nullopt;
  }
  if (text.size() > limit) {
    error = "larger than " + std::to_string(limit >> 20) + " MB";
    return std::nullopt;
  }
  return text;
}

// `pgwarden import-pgbouncer`: exit 0 with the TOML on stdout (notes on stderr), 1 naming what cannot be
// read.
int import_pgbouncer(int argc, char** argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << import_pgbouncer_usage;
      return 0;
    }
    if (arg.starts_with("-")) {
      std::cerr << "pgwarden import-pgbouncer: unknown option " << arg << "\n\n" << import_pgbouncer_usage;
      return 2;
    }
    files.emplace_back(arg);
  }
  if (files.empty() || files.size() > 2) {
    std::cerr << "pgwarden import-pgbouncer: name a pgbouncer.ini and optionally its auth file\n\n"
              << import_pgbouncer_usage;
    return 2;
  }
  try {
    config::PgbouncerImportOptions options;
    options.ini_name = files[0];
    std::string why;
    auto ini = read_text_file(files[0], config::pgbouncer_ini_max_size, why);
    if (!ini) {
      std::cerr << files[0] << ":1:1: cannot read the file: " << why << "\n";
      return 1;
    }
    if (files.size() == 2) {
      auto userlist = read_text_file(files[1], config::pgbouncer_ini_max_size, why);
      if (!userlist) {
        std::cerr << files[1] << ":1:1: cannot read the auth file: " << why << "\n";
        return 1;
      }
      options.userlist_name = files[1];
      options.userlist_text = std::move(*userlist);
    }
    // PgBouncer reads a relative %include from its working directory; failing that, the ini's directory.
    const std::filesystem::path ini_dir = std::filesystem::path(files[0]).parent_path();
    options.read_include = [ini_dir](const std::string& name, std::string& error) {
      auto text = read_text_file(name, config::pgbouncer_ini_max_size, error);
      if (!text && std::filesystem::path(name).is_relative() && !ini_dir.empty()) {
        std::string second;
        text = read_text_file(ini_dir / name, config::pgbouncer_ini_max_size, second);
      }
      return text;
    };
    const config::PgbouncerImportResult result = config::import_pgbouncer(*ini, options);
    for (const auto& d : result.errors)
      std::cerr << d.to_string() << "\n";
    if (!result.ok()) return 1;
    std::cout << result.toml;
    for (const auto& n : result.notes)
      std::cerr << n.to_string() << "\n";
    return 0;
  } catch (const std::exception& e) {  // out of memory: nothing was converted
    std::cerr << "pgwarden import-pgbouncer: " << e.what() << "\n";
    return 1;
  }
}

// Why the audit log's file could not be opened for appending, or "" (checked without creating it).
std::string audit_log_unwritable(const config::AuditSettings& a) {
  if (!a.enabled || !a.has_sink(config::AuditSink::file)) return {};
  auto refused = [&](const std::filesystem::path& target, int mode) {
    return ::access(target.c_str(), mode) == 0 ? std::string()
                                               : "cannot write the audit log " + a.path.string() + ": " +
                                                     target.string() + ": " + std::strerror(errno);
  };
  // Its directory too, where rotation creates files.
  const std::filesystem::path dir = a.path.has_parent_path() ? a.path.parent_path() : ".";
  if (auto why = refused(dir, W_OK | X_OK); !why.empty()) return why;
  std::error_code ec;
  return std::filesystem::exists(a.path, ec) ? refused(a.path, W_OK) : std::string();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "audit") {
    if (argc >= 3 && std::string_view(argv[2]) == "verify") return audit_verify(argc - 2, argv + 2);
    std::cerr << "pgwarden audit: expected the subcommand 'verify'\n\n" << audit_verify_usage;
    return 2;
  }
  if (argc >= 2 && std::string_view(argv[1]) == "import-pgbouncer")
    return import_pgbouncer(argc - 1, argv + 1);
  po::options_description opts("Options");
  opts.add_options()("config,c", po::value<std::string>(), "configuration file (TOML)")(
      "check", "validate the configuration and exit")("takeover", "take over from the running pgwarden")(
      "config-reference", "print the configuration keys")("version,V", "print the version")(
      "help,h", "print this help");
  po::variables_map vm;
  try {
    auto parsed = po::command_line_parser(argc, argv).options(opts).run();
    // "pgwarden --config F check" must not start a server that was asked to check.
    if (auto extra = po::collect_unrecognized(parsed.options, po::include_positional); !extra.empty())
      throw po::error("unexpected argument '" + extra.front() + "'");
    po::store(parsed, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "pgwarden: " << e.what() << "\n\n" << usage_text;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << usage_text;
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "pgwarden " << PGW_VERSION << "\n";
    return 0;
  }
  if (vm.count("config-reference")) {
    std::cout << config::key_reference_markdown();
    return 0;
  }
  if (!vm.count("config")) {
    std::cerr << "pgwarden: --config FILE is required\n\n" << usage_text;
    return 2;
  }
  std::string path = vm["config"].as<std::string>();
  auto runtime = load_everything(path);
  if (!runtime) return 1;
  if (vm.count("check")) {
    std::cout << path << ": configuration OK\n";
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a peer that vanishes mid-write is an error code, not a signal
  // A SIGHUP before the server's handler is in place (above all while a rolling restart waits for the
  // previous process) would end this process, which may already hold every listener.
  hold_sighup(true);
  log::setup(runtime->config->log);
  try {
    handover::Taken taken;
    const auto& px = runtime->config->proxy;
    if (vm.count("takeover")) {
      if (px.handover_socket.empty()) {
        spdlog::critical("--takeover needs proxy.handover_socket in {}", path);
        return 1;
      }
      // What can still fail once the previous process has handed over its listeners and exited would leave
      // nobody serving: checked before asking for them.
      if (auto why = audit_log_unwritable(runtime->config->audit); !why.empty()) {
        spdlog::critical("not taking over: {}", why);
        return 1;
      }
      spdlog::info("rolling restart: taking over from the pgwarden at {}", px.handover_socket.string());
      // Its drain takes at most shutdown_timeout; connections wait in the listeners' backlog meanwhile.
      taken = handover::take_over(px.handover_socket, px.shutdown_timeout + std::chrono::seconds(15), [] {
        spdlog::warn(
            "rolling restart: the previous pgwarden has not exited yet; connections wait in the backlog");
      });
      spdlog::info("rolling restart: the previous process has exited; serving");
    } else if (!px.handover_socket.empty() && handover::someone_listens(px.handover_socket)) {
      spdlog::critical(
          "another pgwarden runs with {} (proxy.handover_socket {}); start with --takeover for a "
          "rolling restart",
          path, px.handover_socket.string());
      return 1;
    }
    Server server(runtime, std::move(taken));
    return server.run();
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    return 1;
  }
}

}  // namespace pgw::proxy
