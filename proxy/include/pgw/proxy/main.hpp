// The pgwarden command line: run, --check, --version, --help and the subcommands.
#pragma once

namespace pgw::proxy {

int main(int argc, char** argv);

}  // namespace pgw::proxy
