//===- PolicyTest.cpp - Policy files into pass pipelines ------------------===//
#include "compiler/policy/Policy.h"

#include <gtest/gtest.h>

using kvopt::policy::parsePolicy;
using kvopt::policy::pipelineText;
using kvopt::policy::Policy;
using kvopt::policy::readPolicyFile;

namespace {

std::string pipeline(std::string_view text) {
  kvrt::StatusOr<Policy> policy = parsePolicy(text, "p.yaml");
  EXPECT_TRUE(policy) << policy.status().message();
  return policy ? pipelineText(*policy) : "";
}

std::string error(std::string_view text) {
  kvrt::StatusOr<Policy> policy = parsePolicy(text, "p.yaml");
  EXPECT_FALSE(policy) << text;
  return policy ? "" : policy.status().message();
}

TEST(Policy, BecomesOneInvocationPerSetting) {
  EXPECT_EQ(pipeline("# kvopt policy\n"
                     "quantize:\n"
                     "  encoding: polar\n"
                     "  bits: 3\n"
                     "  overrides:\n"
                     "    - layers: [0, -1]\n"
                     "      encoding: bf16\n"
                     "    - layers: 4-11\n"
                     "      side: value\n"
                     "      encoding: int\n"
                     "      bits: 2\n"),
            "kv-quantize{encoding=polar bits=3},"
            "kv-quantize{encoding=bf16 layers=0,-1},"
            "kv-quantize{encoding=int bits=2 side=value layers=4-11}");
}

TEST(Policy, EvictionBecomesKVEvictAfterQuantization) {
  // Sections run in the compiler's order (quantize, then evict), whatever
  // their order in the file.
  EXPECT_EQ(pipeline("evict:\n"
                     "  method: triattention\n"
                     "  budget: 0.25\n"
                     "  overrides:\n"
                     "    - layers: -1\n"
                     "      method: h2o\n"
                     "      budget: 1024\n"
                     "quantize:\n"
                     "  encoding: polar\n"),
            "kv-quantize{encoding=polar},"
            "kv-evict{method=triattention budget=0.25},"
            "kv-evict{method=h2o budget=1024 layers=-1}");
  EXPECT_EQ(pipeline("evict:\n"
                     "  layers: [0, 2-3]\n"
                     "  kernel: 5\n"
                     "  observe: 16\n"
                     "  sinks: 4\n"
                     "  interval: 64\n"
                     "  window: 0\n"
                     "  budget: 5e-1\n"
                     "  method: snapkv\n"),
            "kv-evict{method=snapkv budget=5e-1 window=0 interval=64 sinks=4 "
            "observe=16 kernel=5 layers=0,2-3}");
}

TEST(Policy, TriAttentionTakesItsHorizon) {
  EXPECT_EQ(pipeline("evict:\n"
                     "  method: triattention\n"
                     "  budget: 0.25\n"
                     "  horizon: 4096\n"
                     "  combine: zmax\n"),
            "kv-evict{method=triattention budget=0.25 horizon=4096 "
            "combine=zmax}");
}

TEST(Policy, WritesEveryOptionInThePassOrder) {
  EXPECT_EQ(pipeline("quantize:\n"
                     "  layers:\n"
                     "  - 0\n"
                     "  - -2--1\n"
                     "  side: key\n"
                     "  qjl: true\n"
                     "  seed: 18446744073709551615\n"
                     "  encoding: \"polar\"\n"
                     "  bits: 4\n"),
            "kv-quantize{encoding=polar bits=4 seed=18446744073709551615 "
            "qjl=true side=key layers=0,-2--1}");
  EXPECT_EQ(pipeline("quantize:\n"
                     "  encoding: int\n"
                     "  group: 64\n"
                     "  residual: 0\n"
                     "  layers: 3\n"
                     "  overrides: []\n"),
            "kv-quantize{encoding=int group=64 residual=0 layers=3}");
  EXPECT_EQ(pipeline("quantize:\n  encoding: fp8\n  scale: per_head\n"),
            "kv-quantize{encoding=fp8 scale=per_head}");
}

TEST(Policy, ExamplesReadFromTheirFiles) {
  std::string dir = std::string(KVOPT_SOURCE_DIR) + "/examples/policies/";
  kvrt::StatusOr<Policy> edges = readPolicyFile(dir + "polar3-bf16-edges.yaml");
  ASSERT_TRUE(edges) << edges.status().message();
  EXPECT_EQ(pipelineText(*edges),
            "kv-quantize{encoding=polar bits=3 window=128},"
            "kv-quantize{encoding=bf16 layers=0,-1}");
  kvrt::StatusOr<Policy> sides =
      readPolicyFile(dir + "int4-keys-polar3-values.yaml");
  ASSERT_TRUE(sides) << sides.status().message();
  EXPECT_EQ(pipelineText(*sides), "kv-quantize{encoding=polar bits=3},"
                                  "kv-quantize{encoding=int bits=4 side=key}");
  kvrt::StatusOr<Policy> evict =
      readPolicyFile(dir + "triattention-polar4.yaml");
  ASSERT_TRUE(evict) << evict.status().message();
  EXPECT_EQ(pipelineText(*evict),
            "kv-quantize{encoding=polar bits=4},"
            "kv-evict{method=triattention budget=0.25},"
            "kv-evict{method=triattention budget=2048 layers=0,-1}");
  kvrt::StatusOr<Policy> lowRank =
      readPolicyFile(dir + "lowrank-half-fp8.yaml");
  ASSERT_TRUE(lowRank) << lowRank.status().message();
  EXPECT_EQ(pipelineText(*lowRank), "kv-lowrank{side=key ratio=0.5},"
                                    "kv-lowrank{side=value ratio=0.5},"
                                    "kv-lowrank{side=value rank=8 layers=0},"
                                    "kv-quantize{encoding=fp8}");
}

TEST(Policy, LowRankRunsBeforeQuantization) {
  // kv-quantize then encodes the latents; ratios are fractions below 1.
  EXPECT_EQ(pipeline("quantize:\n  encoding: polar\n"
                     "lowrank:\n  ratio: 0.25\n  allocate: uniform\n"
                     "  sinks: 0\n  window: 128\n  method: pca\n"
                     "  value_basis: second_moment\n"),
            "kv-lowrank{method=pca ratio=0.25 allocate=uniform "
            "value_basis=second_moment sinks=0 window=128},"
            "kv-quantize{encoding=polar}");
  EXPECT_EQ(pipeline("lowrank:\n  ratio: 0.5\n  method: lrkv\n"
                     "  shared: 0.25\n"),
            "kv-lowrank{method=lrkv shared=0.25 ratio=0.5}");
  EXPECT_EQ(pipeline("lowrank:\n  side: key\n  ratio: 0.5\n  centre: false\n"),
            "kv-lowrank{side=key ratio=0.5 centre=false}");
  // An exponent is written as the pipeline writes numbers: a lowercase
  // 'e', no '+' (the fuzzer sent 3666E-33).
  EXPECT_EQ(pipeline("lowrank:\n  ratio: 25E-2\n"), "kv-lowrank{ratio=25e-2}");
  EXPECT_EQ(pipeline("evict:\n  method: h2o\n  budget: 1E+0\n"),
            "kv-evict{method=h2o budget=1e0}");
  EXPECT_EQ(error("lowrank:\n  ratio: 1.0\n"),
            "p.yaml:2:10: 'ratio' must be a fraction in (0, 1) with a '.' "
            "(0.5), got '1.0'");
  EXPECT_EQ(error("lowrank:\n  ratio: 32\n"),
            "p.yaml:2:10: 'ratio' must be a fraction in (0, 1) with a '.' "
            "(0.5), got '32'");
  // method=svd and its group pass through (the pass refuses groups over 1).
  EXPECT_EQ(pipeline("lowrank:\n  method: svd\n  group: 1\n  side: key\n"
                     "  ratio: 0.5\n"),
            "kv-lowrank{method=svd group=1 side=key ratio=0.5}");
  EXPECT_EQ(error("lowrank:\n  method: svd\n  group: 0\n"),
            "p.yaml:3:10: 'group' must be a whole number from 1 to "
            "4294967295, got '0'");
  EXPECT_EQ(error("lowrank:\n  rank: 0\n"),
            "p.yaml:2:9: 'rank' must be a whole number from 1 to 4294967295, "
            "got '0'");
}

TEST(Policy, RefusesUnknownKeysByNameAndLine) {
  EXPECT_EQ(error("quantize:\n  encoding: polar\nselect:\n  block: 8\n"),
            "p.yaml:3:1: unknown section 'select'; allowed: lowrank, "
            "quantize, evict");
  EXPECT_EQ(error("evict:\n  method: h2o\n  budget: 0.5\n  recent: 64\n"),
            "p.yaml:4:3: unknown key 'recent' in the evict section; allowed: "
            "method, budget, window, interval, sinks, observe, kernel, "
            "heads, horizon, combine, allocate, spread, layers, overrides");
  EXPECT_EQ(error("quantize:\n  encoding: polar\n  bit: 3\n"),
            "p.yaml:3:3: unknown key 'bit' in the quantize section; allowed: "
            "encoding, bits, group, residual, seed, scale, qjl, sinks, window, "
            "side, layers, overrides");
  EXPECT_EQ(error("quantize:\n  encoding: polar\n  overrides:\n"
                  "    - encoding: bf16\n      overrides: []\n"),
            "p.yaml:5:7: unknown key 'overrides' in this quantize override; "
            "allowed: encoding, bits, group, residual, seed, scale, qjl, "
            "sinks, window, side, layers");
  EXPECT_EQ(error("quantize:\n  encoding: polar\n  encoding: int\n"),
            "p.yaml:3:3: duplicate key 'encoding' (first on line 2)");
}

TEST(Policy, RefusesMissingAndMisplacedParts) {
  EXPECT_EQ(error(""), "p.yaml: the policy is empty; give at least one section "
                       "(lowrank, quantize, evict)");
  EXPECT_EQ(error("- quantize\n"),
            "p.yaml:1:1: a policy is a mapping of sections (lowrank, quantize, "
            "evict), "
            "not a list");
  // Every eviction setting names its method and budget: an override
  // inherits neither.
  EXPECT_EQ(error("evict:\n  method: h2o\n"),
            "p.yaml:2:3: the evict section has no 'budget'; every setting "
            "names it");
  EXPECT_EQ(error("evict:\n  method: h2o\n  budget: 0.5\n  overrides:\n"
                  "    - layers: 0\n      budget: 64\n"),
            "p.yaml:5:7: this evict override has no 'method'; every setting "
            "names it");
  EXPECT_EQ(error("quantize:\n"),
            "p.yaml:1:1: the quantize section must be a mapping of settings, "
            "not nothing");
  EXPECT_EQ(error("quantize: polar\n"),
            "p.yaml:1:1: the quantize section must be a mapping of settings, "
            "not 'polar'");
  EXPECT_EQ(error("quantize:\n  bits: 3\n"),
            "p.yaml:2:3: the quantize section has no 'encoding'; every "
            "setting names it");
  EXPECT_EQ(error("quantize:\n  encoding: polar\n  overrides:\n"
                  "    - layers: 0\n"),
            "p.yaml:4:7: this quantize override has no 'encoding'; every "
            "setting names it");
  EXPECT_EQ(error("quantize:\n  encoding: polar\n  overrides:\n"
                  "    encoding: bf16\n"),
            "p.yaml:3:3: 'overrides' must be a list of settings, not a "
            "mapping");
  EXPECT_EQ(error("quantize:\n  encoding: polar\n  overrides:\n    - bf16\n"),
            "p.yaml:4:7: this quantize override must be a mapping of "
            "settings, not 'bf16'");
}

TEST(Policy, RefusesValuesOfTheWrongType) {
  auto setting = [](const std::string &line) {
    return "quantize:\n  encoding: polar\n  " + line + "\n";
  };
  EXPECT_EQ(error(setting("bits: three")),
            "p.yaml:3:9: 'bits' must be a whole number from 1 to 4294967295, "
            "got 'three'");
  EXPECT_EQ(error(setting("bits: \"3\"")),
            "p.yaml:3:9: 'bits' must be a whole number from 1 to 4294967295, "
            "got the quoted string '3'");
  EXPECT_EQ(error(setting("bits: 3.0")),
            "p.yaml:3:9: 'bits' must be a whole number from 1 to 4294967295, "
            "got '3.0'");
  EXPECT_EQ(error(setting("bits: -3")),
            "p.yaml:3:9: 'bits' must be a whole number from 1 to 4294967295, "
            "got '-3'");
  EXPECT_EQ(error(setting("bits: 0")),
            "p.yaml:3:9: 'bits' must be a whole number from 1 to 4294967295, "
            "got '0'");
  EXPECT_EQ(error(setting("group: 4294967296")),
            "p.yaml:3:10: 'group' must be a whole number from 0 to "
            "4294967295, got '4294967296'");
  EXPECT_EQ(error(setting("seed: 18446744073709551616")),
            "p.yaml:3:9: 'seed' must be a whole number from 0 to "
            "18446744073709551615, got '18446744073709551616'");
  EXPECT_EQ(error(setting("bits: [3]")),
            "p.yaml:3:9: 'bits' must be a whole number from 1 to 4294967295, "
            "got a list");
  EXPECT_EQ(error(setting("bits:")), "p.yaml:3:3: 'bits' has no value");
  EXPECT_EQ(error(setting("qjl: yes")),
            "p.yaml:3:8: 'qjl' must be true or false, got 'yes'");
  EXPECT_EQ(error(setting("qjl: 'true'")),
            "p.yaml:3:8: 'qjl' must be true or false, got the quoted string "
            "'true'");
  EXPECT_EQ(error("quantize:\n  encoding: Polar\n"),
            "p.yaml:2:13: 'encoding' must be a name of at most 32 lowercase "
            "letters, digits and '_', got 'Polar'");
  // Values reach the pipeline text only as words, numbers and layer
  // ranges: none can close the pass's braces or start another pass.
  EXPECT_EQ(error("quantize:\n  encoding: \"polar},cse{\"\n"),
            "p.yaml:2:13: 'encoding' must be a name of at most 32 lowercase "
            "letters, digits and '_', got the quoted string 'polar},cse{'");
  EXPECT_EQ(error(setting("side:\n    k: v")),
            "p.yaml:4:5: 'side' must be a name of at most 32 lowercase "
            "letters, digits and '_', got a mapping");
}

TEST(Policy, RefusesBudgetsThatAreNotFractionsOrCounts) {
  auto budget = [](const std::string &value) {
    return "evict:\n  method: h2o\n  budget: " + value + "\n";
  };
  EXPECT_EQ(error(budget("half")),
            "p.yaml:3:11: 'budget': 'half' is not a budget: write a fraction "
            "in (0, 1] of the tokens seen, with a '.' (0.25), or a whole "
            "token count (1024)");
  EXPECT_EQ(error(budget("1.5")),
            "p.yaml:3:11: 'budget': '1.5' is a fraction (it has a '.' or an "
            "exponent) outside (0, 1]; a token count is written as a whole "
            "number (1024)");
  EXPECT_EQ(error(budget("0")),
            "p.yaml:3:11: 'budget': a budget of 0 tokens keeps nothing: a "
            "token count must be at least 1");
  EXPECT_EQ(error(budget("'0.5'")),
            "p.yaml:3:11: 'budget' must be a fraction in (0, 1] with a '.' "
            "(0.25) or a token count (1024), got the quoted string '0.5'");
  EXPECT_EQ(error(budget("-1")),
            "p.yaml:3:11: 'budget': '-1' is not a budget: write a fraction "
            "in (0, 1] of the tokens seen, with a '.' (0.25), or a whole "
            "token count (1024)");
  EXPECT_EQ(error("evict:\n  method: snapkv\n  budget: 0.5\n  kernel: 0\n"),
            "p.yaml:4:11: 'kernel' must be a whole number from 1 to "
            "4294967295, got '0'");
}

TEST(Policy, RefusesLayersThatAreNotRanges) {
  auto layers = [](const std::string &value) {
    return "quantize:\n  encoding: bf16\n  layers: " + value + "\n";
  };
  EXPECT_EQ(error(layers("1:3")),
            "p.yaml:3:11: 'layers': '1:3' is not a layer range: write N, -N "
            "(counting from the end, -1 is the last layer) or A-B (A to B "
            "inclusive), with indices up to 1048576");
  EXPECT_EQ(error(layers("[0, 99999999]")),
            "p.yaml:3:15: 'layers': '99999999' is not a layer range: write "
            "N, -N (counting from the end, -1 is the last layer) or A-B (A to "
            "B inclusive), with indices up to 1048576");
  EXPECT_EQ(error(layers("[0, 11-4]")),
            "p.yaml:3:15: 'layers': layer range 11-4 runs backwards; write "
            "the lower index first");
  EXPECT_EQ(error(layers("[]")),
            "p.yaml:3:11: 'layers' is an empty list; leave it out to mean "
            "every layer");
  EXPECT_EQ(error(layers("\n    - [0]")),
            "p.yaml:4:7: 'layers' must be a layer range (N, -N or A-B) or a "
            "list of them, got a list");
}

TEST(Policy, NamesTheFileItCannotRead) {
  kvrt::StatusOr<Policy> missing = readPolicyFile("/nonexistent/p.yaml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.status().message(),
            "cannot open '/nonexistent/p.yaml': No such file or directory");
  kvrt::StatusOr<Policy> folder = readPolicyFile(KVOPT_SOURCE_DIR);
  ASSERT_FALSE(folder);
  EXPECT_EQ(folder.status().message(),
            "'" + std::string(KVOPT_SOURCE_DIR) + "' is not a regular file");
}

} // namespace
