// A throwaway audit log directory for the benchmarks: a file sink, fsync = "off" (the disk is not what they
// measure), removed at the end.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "pgw/config/config.hpp"

namespace pgw::bench {

class AuditScratch {
 public:
  explicit AuditScratch(std::string_view name)
      : dir_(std::filesystem::temp_directory_path() /
             ("pgw-bench-" + std::string(name) + "-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_);
    settings_.enabled = true;
    settings_.path = dir_ / "audit.jsonl";
    settings_.sinks = {config::AuditSink::file};
    settings_.fsync = config::AuditFsync::off;
    settings_.rotate_size = 0;
    settings_.instance = "bench";
  }
  ~AuditScratch() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  AuditScratch(const AuditScratch&) = delete;
  AuditScratch& operator=(const AuditScratch&) = delete;

  const config::AuditSettings& settings() const noexcept { return settings_; }

 private:
  std::filesystem::path dir_;
  config::AuditSettings settings_;
};

}  // namespace pgw::bench
