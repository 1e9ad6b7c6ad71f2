#pragma once
// Federated clients: how the training pool is dealt to clients, and which rank hosts which.
#include <cstdint>
#include <string>
#include <vector>

#include "core/data_source.h"

namespace oodt {

enum class ClientSplit {
  Iid,        // a random equal share each
  Dirichlet,  // per class, proportions over clients ~ Dirichlet(alpha) (Hsu et al. 2019)
  Domain,     // one client per training domain: the natural OOD split
};

// Pool positions of every client ([client] -> sorted positions). Every position goes to exactly
// one client and every client gets at least one (a Dirichlet draw that leaves a client empty is
// redrawn). Deterministic in `seed`. Errors name `key` (the plugin's config key).
std::vector<std::vector<int64_t>> split_clients(const TrainPool& pool, int64_t clients, ClientSplit rule,
                                                double alpha, uint64_t seed, const std::string& key);

// Clients hosted by `rank` of `world`: client c lives on rank c % world.
std::vector<int64_t> hosted_clients(int64_t clients, int rank, int world);

}  // namespace oodt
