#pragma once
// A tiny training setup shared by the trainer tests (test_train.cpp) and the data-parallel ones
// (test_dist_train.cpp): random latents that need no network, and a model that trains in milliseconds.
#include <filesystem>
#include <string>

#include "cli_runner.h"
#include "data/latent_dataset.h"
#include "train/train_options.h"

namespace sdit::testing_helpers {

inline std::string fresh_dir(const std::string& name) {
  const std::string d = temp_path(name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// 64 random 4x8x8 "latents" in 10 classes: a dataset that needs no network and no VAE.
inline std::string tiny_latent_dataset() {
  static std::string dir;
  if (!dir.empty()) return dir;
  dir = fresh_dir("latents");
  LatentDatasetWriter::Options o;
  for (int i = 0; i < 10; ++i) o.classes.push_back("c" + std::to_string(i));
  o.latent_shape = {4, 8, 8};
  LatentDatasetWriter w(dir, o, /*overwrite=*/true);
  torch::manual_seed(123);
  w.add(torch::randn({64, 4, 8, 8}), torch::arange(64, torch::kLong) % 10);
  w.finish();
  return dir;
}

// hidden 32, 8x8 inputs, patch 2 -> a 4x4 token grid.
inline TrainOptions tiny_options(const std::string& results, bool sparse) {
  TrainOptions o;
  o.data = tiny_latent_dataset();
  o.hidden_size = 32;
  o.depth = sparse ? 5 : 2;
  o.num_heads = 2;
  o.patch_size = 2;
  o.sparse = sparse;
  if (sparse) o.density = "sides:4,3,2,1";
  o.global_batch_size = 8;
  o.lr = 1e-3;
  o.ema_decay = 0.9;
  o.steps = 4;
  o.ckpt_every = 2;
  o.log_every = 1;
  o.results_dir = results;
  o.seed = 7;
  return o;
}

}  // namespace sdit::testing_helpers
