#include <gtest/gtest.h>

#include "core/engine.h"
#include "core/registry.h"

namespace oodt {
namespace {

// Records (name, phase) into a shared log.
class Recorder : public Algorithm {
 public:
  Recorder(std::string n, std::vector<std::string>* log, PhaseSet hooks, std::vector<std::string> claims = {},
           bool averaging = false)
      : log_(log), hooks_(hooks), claims_(std::move(claims)), averaging_(averaging) {
    set_name(std::move(n));
  }
  PhaseSet hooks() const override { return hooks_; }
  bool active(const State& s) const override { return s.step != 99; }
  void run(Phase p, State&) override { log_->push_back(name() + "@" + phase_name(p)); }
  std::vector<std::string> claims() const override { return claims_; }
  bool owns_averaging() const override { return averaging_; }

 private:
  std::vector<std::string>* log_;
  PhaseSet hooks_;
  std::vector<std::string> claims_;
  bool averaging_;
};

std::vector<std::unique_ptr<Algorithm>> make(std::vector<std::string>* log,
                                             std::initializer_list<std::string> names, PhaseSet hooks) {
  std::vector<std::unique_ptr<Algorithm>> v;
  for (const auto& n : names) v.push_back(std::make_unique<Recorder>(n, log, hooks));
  return v;
}

TEST(Engine, BeforePhasesInConfigOrderAfterPhasesReversed) {
  std::vector<std::string> log;
  Engine e(make(&log, {"a", "b", "c"}, phases({Phase::BeforeForward, Phase::AfterForward, Phase::FitEnd})));
  State s;
  e.run(Phase::BeforeForward, s);
  e.run(Phase::AfterForward, s);
  e.run(Phase::FitEnd, s);
  e.run(Phase::BeforeLoss, s);  // nobody hooks it
  const std::vector<std::string> want = {"a@before_forward", "b@before_forward", "c@before_forward",
                                         "c@after_forward",  "b@after_forward",  "a@after_forward",
                                         "c@fit_end",        "b@fit_end",        "a@fit_end"};
  EXPECT_EQ(log, want);
  EXPECT_NE(e.describe_order().find("before_forward: a, b, c"), std::string::npos);
  EXPECT_NE(e.describe_order().find("after_forward: c, b, a"), std::string::npos);
}

TEST(Engine, InactivePluginsAreSkipped) {
  std::vector<std::string> log;
  Engine e(make(&log, {"a"}, phases({Phase::BeforeLoss})));
  State s;
  s.step = 99;
  e.run(Phase::BeforeLoss, s);
  EXPECT_TRUE(log.empty());
}

TEST(Engine, ConflictingClaimsFailAtStartNamingBoth) {
  std::vector<std::string> log;
  std::vector<std::unique_ptr<Algorithm>> v;
  v.push_back(std::make_unique<Recorder>("fedspeed", &log, PhaseSet{}, std::vector<std::string>{}, true));
  v.push_back(std::make_unique<Recorder>("soup", &log, PhaseSet{}, std::vector<std::string>{}, true));
  try {
    Engine e(std::move(v));
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("'fedspeed' and 'soup' both claim averaging"), std::string::npos) << msg;
  }
  std::vector<std::unique_ptr<Algorithm>> w;
  w.push_back(std::make_unique<Recorder>("x", &log, PhaseSet{}, std::vector<std::string>{"loss"}));
  w.push_back(std::make_unique<Recorder>("y", &log, PhaseSet{}, std::vector<std::string>{"loss"}));
  EXPECT_THROW(Engine(std::move(w)), ConfigError);
}

TEST(Registry, BuildsListedPluginsInOrderWithValidatedOptions) {
  Registry r;
  register_builtins(r);
  YAML::Node list = YAML::Load("[label_smoothing, {mixup: {alpha: 0.2}}]");
  auto algos = r.build(list, nullptr);
  ASSERT_EQ(algos.size(), 2u);
  EXPECT_EQ(algos[0]->name(), "label_smoothing");
  EXPECT_EQ(algos[1]->name(), "mixup");
  // The resolved list has every entry in map form with defaults filled.
  EXPECT_DOUBLE_EQ(list[0]["label_smoothing"]["smoothing"].as<double>(), 0.1);
  EXPECT_DOUBLE_EQ(list[1]["mixup"]["alpha"].as<double>(), 0.2);
}

TEST(Registry, ErrorsNameTheEntry) {
  Registry r;
  register_builtins(r);
  auto msg_of = [&](const std::string& yaml) -> std::string {
    try {
      r.build(YAML::Load(yaml), nullptr);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "<none>";
  };
  EXPECT_NE(msg_of("[mixpu]").find("did you mean 'mixup'"), std::string::npos);
  EXPECT_NE(msg_of("[mixup, mixup]").find("listed twice"), std::string::npos);
  EXPECT_NE(msg_of("[{mixup: {alpah: 1}}]").find("algorithms.mixup.alpah"), std::string::npos);
  EXPECT_NE(msg_of("[{mixup: {alpha: -1}}]").find("algorithms.mixup.alpha: must be > 0"), std::string::npos);
  EXPECT_NE(msg_of("{mixup: {}}").find("expected a list"), std::string::npos);
}

}  // namespace
}  // namespace oodt
