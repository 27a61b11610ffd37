#pragma once
// Each subcommand lives in its own cmd_*.cpp and registers itself on the root app.
#include <CLI/CLI.hpp>

namespace sdit::cli {

void register_info(CLI::App& app);
void register_demo(CLI::App& app);
void register_sample(CLI::App& app);
void register_convert(CLI::App& app);
void register_flops(CLI::App& app);
void register_decode(CLI::App& app);
void register_encode(CLI::App& app);
void register_train(CLI::App& app);
void register_bench(CLI::App& app);
void register_eval(CLI::App& app);
void register_train_classifier(CLI::App& app);
void register_dist_check(CLI::App& app);
void register_encode_text(CLI::App& app);

}  // namespace sdit::cli
