// `oodtrain interpolate` (WiSE-FT) and `oodtrain soup` (uniform / greedy model soups): load
// checkpoints, merge them (algorithms/soups/merge.h), evaluate every candidate on the ranks
// together, write the result.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "algorithms/lsq/lsq.h"
#include "algorithms/soups/merge.h"
#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/gradient_sync.h"
#include "core/models/model.h"
#include "core/report.h"
#include "data/domain_dataset.h"
#include "launch/cli.h"
#include "launch/plot.h"

namespace oodt {
namespace fs = std::filesystem;
namespace {

// Everything needed to score merged weights: the model built from the first checkpoint's own
// config, and the evaluation data from the given config files.
struct Scorer {
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<DataSource> data;
  std::shared_ptr<Model> model;
  int64_t batch = 512;

  Scorer(const Checkpoint& first, const std::string& first_path, const std::vector<std::string>& configs,
         const std::vector<std::string>& sets) {
    comm = make_communicator();
    ConfigTree tree;
    for (const auto& c : configs) tree.merge_file(c);
    for (const auto& kv : sets) tree.set(kv);
    ConfigReader root(tree.root, "", tree.origins);
    ConfigReader data_cfg = root.child("data");
    data = make_data_source(DataOptions::from_config(data_cfg), 0, comm->rank(), comm->world_size());
    ConfigTree ck_tree;
    ck_tree.merge(parse_yaml(first.config, first_path + " (stored config)"), first_path);
    ConfigReader model_cfg(ck_tree.root["model"], "model", ck_tree.origins);
    model = build_model(model_cfg, ModelShape{data->input_shape(), data->num_classes()});
    restore_recorded_quantizers(*model, first.model);  // LSQ-trained candidates merge like others
  }

  EvalSummary scores(const TensorMap& weights) {
    load_module_state(*model, weights, "merged weights");
    return summarize(evaluate(*model, *data, *comm, batch, at::kCPU), data->domains());
  }
  // Validation and held-out accuracy.
  std::pair<double, double> score(const TensorMap& weights) {
    const EvalSummary s = scores(weights);
    return {s.val_acc, s.heldout_acc};
  }

  bool root() const { return comm->rank() == 0; }

  // Diagonal Fisher of `weights` from about `samples` training examples, split over the ranks
  // and averaged, so every rank holds the same estimate.
  TensorMap fisher(const TensorMap& weights, int64_t samples) {
    load_module_state(*model, weights, "Fisher estimate");
    const int64_t mine = std::max<int64_t>(1, (samples + comm->world_size() - 1) / comm->world_size());
    std::vector<at::Tensor> xs, ys;
    int64_t have = 0;
    for (int64_t k = 0; have < mine; ++k) {
      const Batch b = data->train_batch(k);
      xs.push_back(b.inputs);
      ys.push_back(b.labels);
      have += b.size();
    }
    Batch batch;
    batch.inputs = at::cat(xs).narrow(0, 0, mine);
    batch.labels = at::cat(ys).narrow(0, 0, mine);
    TensorMap f = diagonal_fisher(*model, batch);
    for (auto& [name, t] : f) {
      comm->all_reduce(t, ReduceOp::Sum);
      t.div_(comm->world_size());
    }
    return f;
  }
};

// Warns when candidates do not record one shared origin (their --init-from checkpoint):
// soups only work for models fine-tuned from the same start.
void warn_on_origins(const std::vector<Checkpoint>& cks, const std::vector<std::string>& paths) {
  for (size_t i = 0; i < cks.size(); ++i) {
    if (cks[i].init_from.empty()) {
      std::cerr << "oodtrain: warning: " << paths[i] << " records no origin (it was not started with --init-from); "
                << "a soup assumes every candidate was fine-tuned from the same start\n";
      return;
    }
    if (cks[i].init_from != cks[0].init_from) {
      std::cerr << "oodtrain: warning: the candidates do not share a recorded origin (" << paths[0] << ": '"
                << cks[0].init_from << "', " << paths[i] << ": '" << cks[i].init_from
                << "'); averaging models trained from different starts usually fails\n";
      return;
    }
  }
}

// Refuses an output path that names one of the inputs: writing it would replace an input.
void refuse_overwriting_inputs(const std::string& out, const std::vector<std::string>& inputs, const std::string& key) {
  std::error_code ec;
  const fs::path o = fs::weakly_canonical(out, ec);
  for (const auto& in : inputs)
    if (fs::weakly_canonical(in, ec) == o)
      throw ConfigError(key, concat("'", out, "' is one of the inputs (", in, "); write the result elsewhere"));
}

std::vector<Checkpoint> load_all(const std::vector<std::string>& paths) {
  std::vector<Checkpoint> out;
  for (const auto& p : paths) out.push_back(read_checkpoint(p));
  std::vector<TensorMap> states;
  for (const auto& c : out) states.push_back(c.model);
  check_mergeable(states, paths);
  return out;
}

}  // namespace

int cmd_interpolate(const Args& args) {
  std::string zero_shot, finetuned, alphas_spec = "0:1:0.1", out_dir = "runs/interpolate";
  std::vector<std::string> configs, sets;
  po::options_description desc("interpolate options");
  desc.add_options()
      ("zero-shot", po::value(&zero_shot)->required(), "checkpoint of the pre-trained / zero-shot model (theta_0)")
      ("finetuned", po::value(&finetuned)->required(), "checkpoint fine-tuned from it (theta_1)")
      ("alphas", po::value(&alphas_spec)->default_value(alphas_spec), "a:b:step or a list: 0,0.5,1")
      ("eval,c", po::value(&configs)->composing()->required(), "config file(s) whose data section is the evaluation data")
      ("set,s", po::value(&sets)->composing(), "override a key of the evaluation config")
      ("out,o", po::value(&out_dir)->default_value(out_dir), "folder for interpolation.csv and its figure interpolation.png / .svg")
      ("write-checkpoints", "also write theta_alpha as <out>/alpha_<a>.h5")
      ("fisher", po::value<int64_t>()->default_value(0),
       "Fisher-weighted merge, each model's diagonal Fisher from this many training examples (0: plain)");
  po::variables_map vm;
  if (!parse_args("interpolate", "interpolate --zero-shot a.h5 --finetuned b.h5 --alphas 0:1:0.1 --eval config.yaml",
                  args, desc, vm))
    return 0;
  const std::vector<double> alphas = parse_alphas(alphas_spec);
  const auto cks = load_all({zero_shot, finetuned});
  if (cks[1].init_from.empty() || fs::path(cks[1].init_from).filename() != fs::path(zero_shot).filename())
    std::cerr << "oodtrain: warning: " << finetuned << " does not record " << zero_shot
              << " as its origin (init_from: '" << cks[1].init_from << "'); WiSE-FT assumes theta_1 was fine-tuned from theta_0\n";
  Scorer scorer(cks[1], finetuned, configs, sets);
  const int64_t fisher_samples = vm["fisher"].as<int64_t>();
  if (fisher_samples < 0) throw ConfigError("--fisher", "must be >= 0");
  TensorMap fisher0, fisher1;
  if (fisher_samples > 0) {
    fisher0 = scorer.fisher(cks[0].model, fisher_samples);
    fisher1 = scorer.fisher(cks[1].model, fisher_samples);
  }
  std::vector<double> id, ood, conf, ece;
  if (scorer.root()) {
    fs::create_directories(out_dir);
    std::printf("%8s %10s %10s %10s %10s\n", "alpha", "ID acc", "OOD acc", "OOD conf", "OOD ECE");
  }
  for (double a : alphas) {
    const TensorMap theta = fisher_samples > 0 ? fisher_interpolate(cks[0].model, cks[1].model, fisher0, fisher1, a)
                                               : interpolate(cks[0].model, cks[1].model, a);
    const auto s = scorer.scores(theta);
    id.push_back(s.val_acc);
    ood.push_back(s.heldout_acc);
    conf.push_back(s.heldout_conf);
    ece.push_back(s.heldout_ece);
    if (!scorer.root()) continue;
    std::printf("%8.3f %10.4f %10.4f %10.4f %10.4f\n", a, s.val_acc, s.heldout_acc, s.heldout_conf, s.heldout_ece);
    if (vm.count("write-checkpoints")) {
      Checkpoint ck = cks[1];
      ck.model = theta;
      ck.optimizer.clear();
      ck.plugins.clear();
      ck.init_from = fs::absolute(zero_shot).string();
      char name[64];
      std::snprintf(name, sizeof name, "alpha_%.3f.h5", a);
      write_checkpoint((fs::path(out_dir) / name).string(), ck);
    }
  }
  if (scorer.root()) {
    const std::string csv_path = (fs::path(out_dir) / "interpolation.csv").string();
    {
      std::ofstream csv(csv_path);
      csv << "alpha,id_acc,ood_acc,ood_confidence,ood_ece\n";
      for (size_t i = 0; i < alphas.size(); ++i)
        csv << alphas[i] << "," << id[i] << "," << ood[i] << "," << conf[i] << "," << ece[i] << "\n";
      if (!csv.flush()) throw DataError(concat("cannot write ", csv_path));
    }
    std::printf("wrote %s\n", csv_path.c_str());
    std::fflush(stdout);  // the numbers are safe even when the figure fails
    const fs::path fig = fs::path(out_dir) / "interpolation";
    plot("wiseft", csv_path, {fig.string() + ".png", fig.string() + ".svg"});
    std::printf("wrote %s.png and %s.svg\n", fig.c_str(), fig.c_str());
  }
  return 0;
}

int cmd_soup(const Args& args) {
  std::string method = "greedy", out = "soup.h5";
  std::vector<std::string> paths, configs, sets;
  int64_t recalibrate = 50;
  po::options_description desc("soup options");
  desc.add_options()
      ("method", po::value(&method)->default_value(method), "uniform | greedy")
      ("checkpoints", po::value(&paths)->multitoken()->required(), "candidate checkpoints (same model, same origin)")
      ("val,c", po::value(&configs)->composing()->required(),
       "config file(s) whose data section gives the validation data (the training domains' out splits)")
      ("set,s", po::value(&sets)->composing(), "override a key of the validation config")
      ("out,o", po::value(&out)->default_value(out),
       "the soup checkpoint (a .json summary and its figure, .png / .svg, are written beside it)")
      ("strict", "greedy: add a candidate only when the soup strictly improves (default: >=, as in the paper)")
      ("recalibrate-batches", po::value(&recalibrate)->default_value(recalibrate),
       "training batches to recompute BatchNorm statistics of every soup before scoring (models with BN)");
  po::variables_map vm;
  if (!parse_args("soup", "soup --method uniform|greedy --checkpoints a.h5 b.h5 ... --val config.yaml --out soup.h5",
                  args, desc, vm))
    return 0;
  if (method != "uniform" && method != "greedy")
    throw ConfigError("--method", concat("'", method, "' is not one of: uniform, greedy"));
  if (paths.size() < 2) throw ConfigError("--checkpoints", "a soup needs at least two candidates");
  refuse_overwriting_inputs(out, paths, "--out");
  if (recalibrate < 1) throw ConfigError("--recalibrate-batches", "must be >= 1");
  const auto cks = load_all(paths);
  warn_on_origins(cks, paths);
  Scorer scorer(cks[0], paths[0], configs, sets);
  std::vector<TensorMap> states;
  for (const auto& c : cks) states.push_back(c.model);
  // The soup of `members`, BN statistics recalibrated, loaded into the scorer's model.
  auto cook = [&](const std::vector<size_t>& members) {
    std::vector<TensorMap> chosen;
    for (size_t m : members) chosen.push_back(states[m]);
    load_module_state(*scorer.model, uniform_soup(chosen), "soup");
    recalibrate_batch_norm(*scorer.model, *scorer.data, *scorer.comm, recalibrate, DistOptions{}.bucket_bytes());
    return module_state(*scorer.model);
  };
  std::vector<size_t> kept;
  nlohmann::json candidates = nlohmann::json::array();
  if (method == "uniform") {
    for (size_t i = 0; i < paths.size(); ++i) kept.push_back(i);
  } else {
    auto score = [&](const std::vector<size_t>& members) { return scorer.score(cook(members)).first; };
    const GreedySoup g = greedy_soup(paths.size(), score, vm.count("strict") > 0);
    kept = g.kept;
    if (scorer.root()) {
      std::printf("%-4s %-40s %10s %10s %s\n", "rank", "candidate", "own acc", "soup acc", "kept");
      for (size_t k = 0; k < g.order.size(); ++k)
        std::printf("%-4zu %-40s %10.4f %10.4f %s\n", k + 1, paths[g.order[k]].c_str(), g.individual[g.order[k]],
                    g.trial[k], g.accepted[k] ? "yes" : "no");
    }
    for (size_t k = 0; k < g.order.size(); ++k)
      candidates.push_back({{"path", paths[g.order[k]]},
                            {"val_acc", json_number(g.individual[g.order[k]])},
                            {"soup_val_acc", json_number(g.trial[k])},
                            {"kept", static_cast<bool>(g.accepted[k])}});
  }
  const TensorMap soup = cook(kept);
  const auto [val, ood] = scorer.score(soup);
  if (!scorer.root()) return 0;
  std::printf("%s soup of %zu of %zu candidates: validation acc %.4f, held-out acc %.4f\n", method.c_str(), kept.size(),
              paths.size(), val, ood);
  Checkpoint ck = cks[0];
  ck.model = soup;
  ck.optimizer.clear();
  ck.averaging.clear();
  ck.plugins.clear();
  if (fs::path(out).has_parent_path()) fs::create_directories(fs::path(out).parent_path());
  write_checkpoint(out, ck);
  nlohmann::json kept_paths = nlohmann::json::array();
  for (size_t m : kept) kept_paths.push_back(paths[m]);
  const nlohmann::json report = {{"method", method},
                                 {"kept", kept_paths},
                                 {"val_acc", json_number(val)},
                                 {"heldout_acc", json_number(ood)},
                                 {"candidates", candidates}};
  const std::string json_path = fs::path(out).replace_extension(".json").string();
  {
    std::ofstream f(json_path);
    f << report.dump() << "\n";
    if (!f.flush()) throw DataError(concat("cannot write ", json_path));
  }
  std::printf("wrote %s and %s\n", out.c_str(), json_path.c_str());
  std::fflush(stdout);
  // Each candidate alone against the soup (greedy), or the soup's scores (uniform).
  const std::string fig = fs::path(out).replace_extension("").string();
  plot("soup", json_path, {fig + ".png", fig + ".svg"});
  std::printf("wrote %s.png and %s.svg\n", fig.c_str(), fig.c_str());
  return 0;
}

}  // namespace oodt
