#include "algorithms/fedspeed/clients.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "core/random.h"
#include "core/seed.h"

namespace oodt {

std::vector<std::vector<int64_t>> split_clients(const TrainPool& pool, int64_t clients, ClientSplit rule,
                                                double alpha, uint64_t seed, const std::string& key) {
  const int64_t n = pool.size();
  if (clients < 1) throw ConfigError(key + ".clients", "must be >= 1");
  if (n < clients)
    throw ConfigError(key + ".clients", concat(clients, " clients but only ", n, " training samples"));
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(clients));
  switch (rule) {
    case ClientSplit::Iid: {
      std::vector<int64_t> all(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
      SeededRng(mix_seed(seed, 0xc11e)).shuffle(all);
      for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i % clients)].push_back(all[static_cast<size_t>(i)]);
      break;
    }
    case ClientSplit::Domain: {
      std::set<int64_t> domains(pool.domains.begin(), pool.domains.end());
      if (static_cast<int64_t>(domains.size()) != clients)
        throw ConfigError(key + ".clients", concat("split: domain makes one client per training domain: set clients to ",
                                                   domains.size(), " (it is ", clients, ")"));
      std::map<int64_t, size_t> index;
      for (int64_t d : domains) index.emplace(d, index.size());
      for (int64_t i = 0; i < n; ++i) out[index.at(pool.domains[static_cast<size_t>(i)])].push_back(i);
      break;
    }
    case ClientSplit::Dirichlet: {
      if (alpha <= 0) throw ConfigError(key + ".dirichlet_alpha", "must be > 0");
      std::map<int64_t, std::vector<int64_t>> by_class;
      for (int64_t i = 0; i < n; ++i) by_class[pool.labels[static_cast<size_t>(i)]].push_back(i);
      for (int attempt = 0;; ++attempt) {
        if (attempt == 1000)
          throw ConfigError(key + ".dirichlet_alpha",
                            concat("1000 draws left some client without data; use fewer clients or a larger alpha"));
        for (auto& c : out) c.clear();
        SeededRng rng(mix_seed(seed, 0xd1e1, static_cast<uint64_t>(attempt)));
        for (auto& [label, members] : by_class) {
          std::vector<int64_t> shuffled = members;
          rng.shuffle(shuffled);
          std::vector<double> p(static_cast<size_t>(clients));
          double total = 0;
          for (auto& v : p) total += (v = rng.gamma(alpha));
          // Cut points at the cumulative proportions.
          const auto m = static_cast<int64_t>(shuffled.size());
          double cum = 0;
          int64_t start = 0;
          for (int64_t c = 0; c < clients; ++c) {
            cum += p[static_cast<size_t>(c)] / total;
            const int64_t end = c + 1 == clients ? m : std::min<int64_t>(m, static_cast<int64_t>(cum * static_cast<double>(m)));
            for (int64_t k = start; k < end; ++k) out[static_cast<size_t>(c)].push_back(shuffled[static_cast<size_t>(k)]);
            start = std::max(start, end);
          }
        }
        bool ok = true;
        for (const auto& c : out) ok = ok && !c.empty();
        if (ok) break;
      }
      break;
    }
  }
  for (auto& c : out) std::sort(c.begin(), c.end());
  return out;
}

std::vector<int64_t> hosted_clients(int64_t clients, int rank, int world) {
  std::vector<int64_t> out;
  for (int64_t c = rank; c < clients; c += world) out.push_back(c);
  return out;
}

}  // namespace oodt
