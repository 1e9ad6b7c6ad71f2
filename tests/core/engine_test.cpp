#include <gtest/gtest.h>

#include "core/engine.h"
#include "core/registry.h"

namespace oodt {
namespace {

// Records (name, phase) into a shared log.
class Recorder : public Algorithm {
 public:
  Recorder(std::string n, std::vector<std::string>* log, std::vector<Phase> hooks, std::vector<Claim> claims = {})
      : log_(log), hooks_(std::move(hooks)), claims_(std::move(claims)) {
    set_name(std::move(n));
  }
  void hooks(HookTable& table) override {
    for (Phase p : hooks_) table.on(p, [this, p](State&) { log_->push_back(name() + "@" + phase_name(p)); });
  }
  bool active(const State& s) const override { return s.step != 99; }
  std::vector<Claim> claims() const override { return claims_; }
  Capabilities capabilities() const override {
    Capabilities c;
    for (Phase p : hooks_) c.rewrites_gradients_after_backward |= p == Phase::AfterBackward || p == Phase::BeforeAveraging;
    return c;
  }

 private:
  std::vector<std::string>* log_;
  std::vector<Phase> hooks_;
  std::vector<Claim> claims_;
};

// A plugin owning averaging (an optional interface: an implicit claim).
class Owner final : public Recorder, public AveragingOwner {
 public:
  using Recorder::Recorder;
  std::shared_ptr<AveragingStrategy> averaging() override { return nullptr; }
};

std::vector<std::unique_ptr<Algorithm>> make(std::vector<std::string>* log,
                                             std::initializer_list<std::string> names, std::vector<Phase> hooks) {
  std::vector<std::unique_ptr<Algorithm>> v;
  for (const auto& n : names) v.push_back(std::make_unique<Recorder>(n, log, hooks));
  return v;
}

TEST(Engine, BeforePhasesInConfigOrderAfterPhasesReversed) {
  std::vector<std::string> log;
  Engine e(make(&log, {"a", "b", "c"}, {Phase::BeforeForward, Phase::AfterForward, Phase::FitEnd}));
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
  Engine e(make(&log, {"a"}, {Phase::BeforeLoss}));
  State s;
  s.step = 99;
  e.run(Phase::BeforeLoss, s);
  EXPECT_TRUE(log.empty());
}

TEST(Engine, ConflictingClaimsFailAtStartNamingBoth) {
  std::vector<std::string> log;
  std::vector<std::unique_ptr<Algorithm>> v;
  v.push_back(std::make_unique<Owner>("fed", &log, std::vector<Phase>{}));
  v.push_back(std::make_unique<Owner>("groups", &log, std::vector<Phase>{}));
  try {
    Engine e(std::move(v));
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("'fed' and 'groups' both claim averaging"), std::string::npos) << msg;
  }
  std::vector<std::unique_ptr<Algorithm>> w;
  w.push_back(std::make_unique<Recorder>("x", &log, std::vector<Phase>{}, std::vector<Claim>{Claim::LearningRate}));
  w.push_back(std::make_unique<Recorder>("y", &log, std::vector<Phase>{}, std::vector<Claim>{Claim::LearningRate}));
  EXPECT_THROW(Engine(std::move(w)), ConfigError);
}

TEST(Engine, CapabilitiesAreTypedQueries) {
  std::vector<std::string> log;
  std::vector<std::unique_ptr<Algorithm>> v;
  v.push_back(std::make_unique<Recorder>("plain", &log, std::vector<Phase>{Phase::BeforeLoss}));
  v.push_back(std::make_unique<Owner>("owner", &log, std::vector<Phase>{Phase::AfterBackward}));
  Engine e(std::move(v));
  EXPECT_EQ(e.gradient_rewriters(), "owner");
  ASSERT_NE(e.averaging_owner(), nullptr);
  EXPECT_EQ(e.batch_dealer(), nullptr);
  EXPECT_EQ(e.predictor(), nullptr);
  EXPECT_NE(e.describe_order().find("claims of owner: averaging"), std::string::npos) << e.describe_order();
}

// A plugin whose declared capabilities contradict the phases it hooks.
class Liar final : public Algorithm {
 public:
  explicit Liar(bool hook) : hook_(hook) { set_name("liar"); }
  void hooks(HookTable& table) override {
    if (hook_) table.on(Phase::AfterBackward, [](State&) {});
  }
  Capabilities capabilities() const override { return Capabilities::rewriting_gradients(!hook_); }

 private:
  bool hook_;
};

TEST(Engine, HookedPhasesMustMatchTheDeclaredCapabilities) {
  for (bool hook : {true, false}) {
    std::vector<std::unique_ptr<Algorithm>> v;
    v.push_back(std::make_unique<Liar>(hook));
    try {
      Engine e(std::move(v));
      ADD_FAILURE() << "accepted a plugin whose capabilities contradict its hooks";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("plugin 'liar'"), std::string::npos) << err.what();
    }
  }
  HookTable table;
  table.on(Phase::BeforeLoss, [](State&) {});
  EXPECT_THROW(table.on(Phase::BeforeLoss, [](State&) {}), Error);  // one handler per phase
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
