// sparsedit: one binary, one subcommand per job. Every failure the user can cause ends here as a
// one-line message and exit status 1; CLI11 reports usage errors (unknown flags) with status 2.
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>

#include <unistd.h>

#include "cli/commands.h"
#include "util/error.h"

namespace {

// libgomp spin-waits up to 300,000 iterations at every barrier by default. With both cores taken
// by another process that turns 2 threads into a 3.9x slowdown (DiT-XL/2 bf16, README "Threads");
// a short spin keeps 94 % of the speed alone and halves the slowdown under load. libgomp reads its
// settings when it is loaded, before main, so the process re-executes itself once with them set.
// A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone.
void tune_openmp_waiting(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv("SPARSEDIT_OMP_TUNED")) return;
  setenv("GOMP_SPINCOUNT", "3000", 1);
  setenv("SPARSEDIT_OMP_TUNED", "1", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

}  // namespace

int main(int argc, char** argv) {
  tune_openmp_waiting(argv);
  CLI::App app{"sparsedit: DiT and SparseDiT (token-sparsified DiT) on libtorch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sparsedit 0.1");
  sdit::cli::register_demo(app);
  sdit::cli::register_info(app);
  sdit::cli::register_sample(app);
  sdit::cli::register_convert(app);
  sdit::cli::register_flops(app);
  sdit::cli::register_decode(app);
  sdit::cli::register_encode(app);
  sdit::cli::register_train(app);
  sdit::cli::register_bench(app);
  sdit::cli::register_eval(app);
  sdit::cli::register_train_classifier(app);
  sdit::cli::register_dist_check(app);
  sdit::cli::register_encode_text(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const sdit::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
