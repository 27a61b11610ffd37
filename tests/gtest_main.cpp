#include <gtest/gtest.h>
#include <torch/torch.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Tests use tiny models: one intra-op thread avoids OpenMP/OpenBLAS oversubscription on small CPUs.
  torch::set_num_threads(1);
  return RUN_ALL_TESTS();
}
