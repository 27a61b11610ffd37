// sparsedit: one binary, one subcommand per job. Every failure the user can cause ends here as a
// one-line message and exit status 1; CLI11 reports usage errors (unknown flags) with status 2.
#include <torch/torch.h>

#include <iostream>

#include "cli/commands.h"
#include "util/error.h"

int main(int argc, char** argv) {
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
