#pragma once
// The results folder's files as a resumed run finds them (train/trainer.cpp).
#include <cstdint>
#include <string>

namespace sdit {

// Drops log lines written after `step` (by a run that went on past the checkpoint being resumed).
void truncate_log(const std::string& path, int64_t step);

// Checkpoint writes torn by a crash leave "<name>.tmp.<pid>" behind (AtomicFile); those of
// processes that are gone are removed. A live writer (another process) keeps its file.
void remove_stale_temporaries(const std::string& results_dir);

}  // namespace sdit
