// Command-line entry: parse arguments (Boost.Program_options), check or run.
#include "pgw/proxy/main.hpp"

#include <boost/program_options.hpp>

#include <csignal>
#include <iostream>

#include "log.hpp"
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
    "  pgwarden --config-reference       print the configuration key table (Markdown)\n"
    "  pgwarden --version | --help\n"
    "  pgwarden audit verify FILE...     (not supported yet by this build)\n"
    "  pgwarden import-pgbouncer INI [USERLIST]  (not supported yet by this build)\n\n"
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

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 &&
      (std::string_view(argv[1]) == "audit" || std::string_view(argv[1]) == "import-pgbouncer")) {
    std::cerr << "pgwarden: '" << argv[1] << "' is not supported yet by this build\n";
    return 2;
  }
  po::options_description opts("Options");
  opts.add_options()("config,c", po::value<std::string>(), "configuration file (TOML)")(
      "check", "validate the configuration and exit")("config-reference", "print the configuration keys")(
      "version,V", "print the version")("help,h", "print this help");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
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
  log::setup(runtime->config->log);
  try {
    Server server(runtime);
    return server.run();
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    return 1;
  }
}

}  // namespace pgw::proxy
