#pragma once
// Helpers shared by the test binaries.
#include <memory>
#include <string>

#include "core/algorithm.h"
#include "core/data_source.h"
#include "core/state.h"

namespace oodt::test {

// A fresh empty folder under the system temp dir, removed at exit.
std::string temp_dir(const std::string& tag);
// Path of a committed fixture (tests/fixtures/...).
std::string fixture(const std::string& name);
// Writes a small domain dataset: `per_domain` samples in each of `domains` domains, images
// [n, 1, 4, 4] whose every pixel encodes the row index (row % 251), labels = row % classes.
std::string write_domain_file(const std::string& dir, int domains, int per_domain, int classes);

// Synthetic data: the global batch of step s is `global_batch` fixed random samples (inputs
// [1, 4, 4], 3 classes); rank r of `world` sees rows [r*B/W, (r+1)*B/W).
std::unique_ptr<DataSource> slice_data(int64_t global_batch, int rank, int world);

// Runs `algo`'s handler of `phase` (an Error if it does not hook it).
void run_phase(Algorithm& algo, Phase phase, State& state);

// Max |a - b| (as double).
double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

}  // namespace oodt::test
