// The pgwarden executable.
#include "pgw/proxy/main.hpp"

int main(int argc, char** argv) {
  return pgw::proxy::main(argc, argv);
}
