// `oodtrain eval`: score checkpoints on a data config, per domain and split, on one process or
// N ranks (each rank evaluates its share of every split; one all-reduce combines them).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "algorithms/lsq/lsq.h"
#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/csv.h"
#include "core/engine.h"
#include "core/evaluate.h"
#include "core/models/model.h"
#include "core/registry.h"
#include "core/report.h"
#include "launch/cli.h"
#include "launch/setup.h"

namespace oodt {
namespace fs = std::filesystem;
using json = nlohmann::json;
namespace {

// The same choice as `train` makes (launch/setup.cpp): each rank takes the GPU of its local rank.
at::Device pick_device(const std::string& want, const Communicator& comm) {
  const bool cuda = at::hasCUDA() && at::getNumGPUs() > 0;
  if (want == "cuda" && !cuda) throw ConfigError("train.device", "cuda requested but no CUDA device is available");
  if (want == "cpu" || !cuda) return at::Device(at::kCPU);
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank() % static_cast<int>(at::getNumGPUs())));
}

// Only the evaluation splits of one part (`--split in|out`); everything else passes through.
class SplitFilter final : public DataSource {
 public:
  SplitFilter(std::unique_ptr<DataSource> inner, std::string part) : inner_(std::move(inner)), part_(std::move(part)) {}
  int64_t num_classes() const override { return inner_->num_classes(); }
  std::vector<int64_t> input_shape() const override { return inner_->input_shape(); }
  const std::vector<DomainInfo>& domains() const override { return inner_->domains(); }
  int64_t batch_size() const override { return inner_->batch_size(); }
  Batch train_batch(int64_t step) override { return inner_->train_batch(step); }
  int64_t epoch_of(int64_t step) const override { return inner_->epoch_of(step); }
  int64_t steps_per_epoch() const override { return inner_->steps_per_epoch(); }
  std::vector<EvalSplit> eval_splits() const override {
    std::vector<EvalSplit> out;
    for (const auto& s : inner_->eval_splits())
      if (s.part == part_) out.push_back(s);
    return out;
  }
  void for_each_eval_batch(const EvalSplit& split, int64_t batch_size,
                           const std::function<void(const Batch&)>& fn) override {
    inner_->for_each_eval_batch(split, batch_size, fn);
  }

 private:
  std::unique_ptr<DataSource> inner_;
  std::string part_;
};

// A node as short YAML text, for messages.
std::string yaml_text(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "(absent)";
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

// The first key (dotted, below `path`) where two resolved config sections differ, or "" when
// they agree. Numbers compare by value: 0.1 and 1.0e-1 are the same setting.
std::string first_difference(const YAML::Node& a, const YAML::Node& b, const std::string& path) {
  const bool a_set = a.IsDefined() && !a.IsNull(), b_set = b.IsDefined() && !b.IsNull();
  if (!a_set || !b_set) return a_set == b_set ? "" : path;
  if (a.IsMap() && b.IsMap()) {
    std::set<std::string> keys;
    for (const auto& kv : a) keys.insert(kv.first.Scalar());
    for (const auto& kv : b) keys.insert(kv.first.Scalar());
    for (const auto& k : keys)
      if (std::string d = first_difference(a[k], b[k], path + "." + k); !d.empty()) return d;
    return "";
  }
  if (a.IsSequence() && b.IsSequence()) {
    if (a.size() != b.size()) return path;
    for (size_t i = 0; i < a.size(); ++i)
      if (!first_difference(a[i], b[i], path).empty()) return path;  // a list is one setting
    return "";
  }
  if (a.IsScalar() && b.IsScalar()) {
    if (a.Scalar() == b.Scalar()) return "";
    double x = 0, y = 0;
    if (YAML::convert<double>::decode(a, x) && YAML::convert<double>::decode(b, y) && x == y) return "";
    return path;
  }
  return path;
}

// The node at a dotted path below `root`.
YAML::Node at_path(YAML::Node root, const std::string& dotted) {
  YAML::Node n = root;
  size_t start = 0;
  while (start <= dotted.size()) {
    const size_t dot = dotted.find('.', start);
    const std::string key = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!n.IsMap()) return YAML::Node();
    n = n[key];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return n;
}

// Refuses a model section that is not the checkpoint's: its weights would not fit, or would
// mean something else.
void check_same_model(const ConfigTree& given, const std::string& what, const ConfigTree& stored,
                      const std::string& checkpoint) {
  const std::string key = first_difference(given.root["model"], stored.root["model"], "model");
  if (key.empty()) return;
  std::string origin = concat(what, "'s default");  // a key the files left out
  if (auto it = given.origins->find(key); it != given.origins->end()) origin = it->second;
  throw ConfigError(key, concat(origin, " gives ", yaml_text(at_path(given.root, key)), " but ", checkpoint,
                                " was trained with ", yaml_text(at_path(stored.root, key)),
                                "; the model section must be the checkpoint's (leave it out to use the checkpoint's)"));
}

// One checkpoint's evaluation, as rank 0 reports it.
struct Result {
  std::string path;
  int64_t step = 0, epoch = 0;
  std::vector<SplitMetrics> metrics;
  std::vector<DomainInfo> domains;
};

// Loads `path` and scores it: the model (and the plugins' module surgery and evaluation
// predictor) from the checkpoint's stored config, the data from `configs`' data section or,
// without any, from the stored config; `sets` override either.
Result evaluate_checkpoint(const std::string& path, const Checkpoint& ck, const std::vector<std::string>& configs,
                           const std::vector<std::string>& sets, const std::string& split, Communicator& comm,
                           const Registry& registry) {
  const std::string stored_origin = path + " (stored config)";
  // Parsed twice: the evaluation's tree and the stored one to compare with share no node
  // (assigning a YAML::Node writes through to every node sharing it).
  ConfigTree stored, tree;
  stored.merge(parse_yaml(ck.config, stored_origin), stored_origin);
  tree.merge(parse_yaml(ck.config, stored_origin), stored_origin);
  stored = read_train_config(std::move(stored), registry).tree;

  if (!configs.empty()) {
    ConfigTree given;
    for (const auto& c : configs) given.merge_file(c);
    const bool has_model = given.root["model"].IsDefined();
    given = read_train_config(std::move(given), registry).tree;  // every key checked, defaults filled
    if (has_model) check_same_model(given, "the config", stored, path);
    tree.root.remove("data");
    YAML::Node data(YAML::NodeType::Map);
    data["data"] = YAML::Clone(given.root["data"]);
    tree.merge(data, "-c");
    for (const auto& [key, origin] : *given.origins)
      if (key == "data" || key.rfind("data.", 0) == 0) (*tree.origins)[key] = origin;
  }
  for (const auto& kv : sets) tree.set(kv);
  TrainConfig cfg = read_train_config(std::move(tree), registry);
  check_same_model(cfg.tree, "--set", stored, path);

  // The pieces `train` builds before its first step, in the same order, minus the optimizer.
  set_threads(cfg.trainer.threads, comm);
  const at::Device device = pick_device(cfg.trainer.device, comm);
  std::unique_ptr<DataSource> data =
      make_data_source(cfg.data, static_cast<uint64_t>(cfg.trainer.seed), comm.rank(), comm.world_size());
  if (split != "all") data = std::make_unique<SplitFilter>(std::move(data), split);
  ConfigReader model_cfg(cfg.tree.root["model"], "model", cfg.tree.origins);
  std::shared_ptr<Model> model = build_model(model_cfg, ModelShape{data->input_shape(), data->num_classes()});
  Engine engine(std::move(cfg.algorithms));
  State state;
  state.model = model.get();
  state.comm = &comm;
  state.data = data.get();
  state.device = device;
  state.num_classes = data->num_classes();
  state.max_steps = cfg.trainer.steps;
  state.batch_size = data->batch_size();
  state.eval_batch_size = cfg.trainer.eval_batch_size;
  state.seed = static_cast<uint64_t>(cfg.trainer.seed);
  state.step = ck.step;
  state.epoch = ck.epoch;
  std::set<std::string> before, added;
  for (const auto& kv : model->named_state()) before.insert(kv.first);
  engine.prepare_model(state);
  for (const auto& kv : model->named_state())
    if (!before.count(kv.first)) added.insert(kv.first);
  // Layers an LSQ run quantized, with the steps it learned (soups of such checkpoints keep them).
  restore_recorded_quantizers(*model, ck.model);
  model->to(device);
  // As --init-from: a checkpoint from before a plugin's module surgery lacks that plugin's state.
  load_module_state(*model, ck.model, path, added);
  Predictor predict;
  if (EvaluationPredictor* p = engine.predictor()) predict = [p](Model& m, const at::Tensor& x) { return p->predict(m, x); };

  // A stochastic prediction (a self-ensemble) gives the same scores every time.
  at::manual_seed(static_cast<uint64_t>(cfg.trainer.seed));
  Result r;
  r.path = path;
  r.step = ck.step;
  r.epoch = ck.epoch;
  r.metrics = evaluate(*model, *data, comm, cfg.trainer.eval_batch_size, device, predict);
  r.domains = data->domains();
  return r;
}

void print_result(const Result& r) {
  std::printf("%s (step %lld, epoch %lld)\n", r.path.c_str(), static_cast<long long>(r.step),
              static_cast<long long>(r.epoch));
  std::printf("%-14s %-9s %-5s %8s %8s %8s %8s %8s\n", "domain", "role", "split", "acc", "loss", "ece", "conf", "n");
  for (size_t d = 0; d < r.domains.size(); ++d)
    for (const auto& m : r.metrics) {
      if (m.domain != static_cast<int64_t>(d)) continue;
      std::printf("%-14s %-9s %-5s %8.4f %8.4f %8.4f %8.4f %8lld\n", r.domains[d].name.c_str(),
                  r.domains[d].held_out ? "held-out" : "train", m.part.c_str(), m.accuracy, m.loss, m.ece,
                  m.confidence, static_cast<long long>(m.count));
    }
  const EvalSummary s = summarize(r.metrics, r.domains);
  std::printf("validation acc %.4f (training domains' out splits)  held-out acc %.4f  held-out conf %.4f  "
              "held-out ece %.4f\n\n",
              s.val_acc, s.heldout_acc, s.heldout_conf, s.heldout_ece);
  std::fflush(stdout);
}

// Writes `text` to `path` whole, creating its folder; an error naming the file otherwise.
void write_output(const std::string& path, const std::string& text) {
  const fs::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
  f.flush();
  if (!f) throw Error(concat("cannot write ", path));
}

}  // namespace

int cmd_eval(const Args& args) {
  std::vector<std::string> paths, configs, sets;
  std::string json_out, csv_out, split = "all";
  po::options_description desc("eval options");
  desc.add_options()
      ("checkpoints", po::value(&paths)->multitoken()->required(), "checkpoint files to score")
      ("config,c", po::value(&configs)->composing(),
       "config file(s) whose data section is the evaluation data (default: the data each checkpoint was trained on); "
       "a model section must be the checkpoint's")
      ("set,s", po::value(&sets)->composing(),
       "override a key of the evaluation config: --set data.path=..., --set train.device=cpu, "
       "--set train.eval_batch_size=256")
      ("split", po::value(&split)->default_value(split), "in | out | all: the splits to evaluate")
      ("json", po::value(&json_out), "write a JSON array, one object per checkpoint (a metrics.jsonl row's "
                                     "summary and domains, with checkpoint, step, epoch)")
      ("csv", po::value(&csv_out), "write a CSV table, one row per checkpoint, domain and split");
  po::positional_options_description pos;
  pos.add("checkpoints", -1);
  po::variables_map vm;
  if (!parse_args("eval", "eval CK.h5 [CK2.h5 ...] [-c data.yaml ...] [--set key=value ...]\n"
                          "                     [--json OUT.json] [--csv OUT.csv] [--split in|out|all]",
                  args, desc, vm, &pos))
    return 0;
  if (split != "in" && split != "out" && split != "all")
    throw ConfigError("--split", concat("'", split, "' is not one of: in, out, all"));
  std::error_code ec;
  for (const auto* out : {&json_out, &csv_out}) {
    if (out->empty()) continue;
    for (const auto& in : paths)
      if (fs::weakly_canonical(*out, ec) == fs::weakly_canonical(in, ec))
        throw ConfigError(out == &json_out ? "--json" : "--csv",
                          concat("'", *out, "' is one of the checkpoints; write the result elsewhere"));
  }

  Registry registry;
  register_builtins(registry);
  std::unique_ptr<Communicator> comm = make_communicator();
  // Every checkpoint is read (and verified) before any is scored: a bad file fails at once.
  std::vector<Checkpoint> cks;
  if (const int code = agree(*comm, [&] {
        for (const auto& p : paths) {
          Checkpoint ck = read_checkpoint(p);
          ck.optimizer.clear(), ck.averaging.clear(), ck.plugins.clear(), ck.trainer.clear(), ck.rng = at::Tensor();
          cks.push_back(std::move(ck));
        }
      });
      code != 0)
    return code;
  std::vector<Result> results;
  for (size_t i = 0; i < paths.size(); ++i) {
    Result r;
    if (const int code = agree(*comm, [&] { r = evaluate_checkpoint(paths[i], cks[i], configs, sets, split, *comm, registry); });
        code != 0)
      return code;
    cks[i].model.clear();
    if (comm->rank() == 0) print_result(r);
    results.push_back(std::move(r));
  }
  if (comm->rank() != 0) return 0;

  if (!json_out.empty()) {
    json all = json::array();
    for (const auto& r : results) {
      json row = evaluation_json(r.metrics, r.domains);
      row["checkpoint"] = r.path;
      row["step"] = r.step;
      row["epoch"] = r.epoch;
      row["world_size"] = comm->world_size();
      all.push_back(std::move(row));
    }
    write_output(json_out, all.dump(1) + "\n");
    std::printf("wrote %s\n", json_out.c_str());
  }
  if (!csv_out.empty()) {
    std::string text = csv_row({"checkpoint", "step", "domain", "role", "split", "acc", "loss", "ece", "conf", "n"});
    for (const auto& r : results)
      for (size_t d = 0; d < r.domains.size(); ++d)
        for (const auto& m : r.metrics) {
          if (m.domain != static_cast<int64_t>(d)) continue;
          text += csv_row({r.path, std::to_string(r.step), r.domains[d].name, r.domains[d].held_out ? "held-out" : "train",
                           m.part, csv_number(m.accuracy), csv_number(m.loss), csv_number(m.ece),
                           csv_number(m.confidence), std::to_string(m.count)});
        }
    write_output(csv_out, text);
    std::printf("wrote %s\n", csv_out.c_str());
  }
  return 0;
}

}  // namespace oodt
