#pragma once
// Runs the built sparsedit binary as a user would and captures its exit status and output.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "testing.h"

struct CliResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line and captures its exit status and its output.
inline CliResult capture_command(const std::string& cmd) {
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

inline CliResult run_cli(const std::string& args) { return capture_command(sparsedit_binary() + " " + args + " 2>&1"); }

// Runs `sh -c script` (the script prints what the test reads).
inline CliResult run_sh(const std::string& script) { return capture_command("sh -c '" + script + "' 2>&1"); }

inline std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("sparsedit_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}
