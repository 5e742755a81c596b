//===- PlanExportTest.cpp - What the exporter refuses, and how it says so -===//
//
// Each test parses a small kv module, breaks one thing the runtime relies on
// and checks the one sentence exportModule answers with. Ops carry names
// (NameLoc) so that the messages read as they do on a real model.
//
//===----------------------------------------------------------------------===//
#include "compiler/InitAll.h"
#include "compiler/export/Export.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

namespace {

using namespace kvopt;

/// One decoder layer over a 4-token vocabulary, in the form the importer
/// writes, with every op kind the plan can hold.
constexpr const char *kDecoder = R"mlir(
func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>) -> tensor<?x4xf32> {
  %eye = arith.constant dense<[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]> : tensor<4x4xf32> loc("eye")
  %gain = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32> loc("gain")
  %zero = arith.constant 0 : index
  %x = kv.embedding %eye[%tokens] : tensor<4x4xf32>, tensor<?xi32> -> tensor<?x4xf32> loc("embed")
  %h = kv.rms_norm %x, %gain epsilon = 1.0e-05 : tensor<?x4xf32>, tensor<4xf32> loc("norm")
  %q = kv.linear %h, %eye : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32> loc("q_proj")
  %n = tensor.dim %q, %zero : tensor<?x4xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%n, 1, 4] : tensor<?x4xf32> into tensor<?x1x4xf32> loc("q_heads")
  %qr = kv.rope %q3, %positions theta = 1.0e+04 style = half : tensor<?x1x4xf32>, tensor<?xi32> loc("q_rope")
  %cache = kv.cache layer 0 : !kv.cache<heads = 1, head_dim = 4> loc("cache")
  %cache1 = kv.append %qr, %q3 at %positions into %cache : tensor<?x1x4xf32>, tensor<?x1x4xf32>, tensor<?xi32> into !kv.cache<heads = 1, head_dim = 4> loc("append")
  %a = kv.attention %qr, %cache1 at %positions scale = 0.5 : tensor<?x1x4xf32>, !kv.cache<heads = 1, head_dim = 4>, tensor<?xi32> -> tensor<?x1x4xf32> loc("attention")
  %a2 = tensor.collapse_shape %a [[0], [1, 2]] : tensor<?x1x4xf32> into tensor<?x4xf32> loc("merge_heads")
  %s = kv.swiglu %a2, %h : tensor<?x4xf32> loc("swiglu")
  %r = arith.addf %x, %s : tensor<?x4xf32> loc("residual")
  %logits = kv.lm_head %r, %eye : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32> loc("lm_head")
  return %logits : tensor<?x4xf32> loc("return")
}
)mlir";

/// `text` with its one occurrence of `from` replaced by `to`.
std::string replaced(std::string text, const std::string &from,
                     const std::string &to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "no '" << from << "' to replace";
  EXPECT_EQ(text.find(from, at + 1), std::string::npos)
      << "'" << from << "' is not unique";
  if (at != std::string::npos)
    text.replace(at, from.size(), to);
  return text;
}

class PlanExportTest : public ::testing::Test {
protected:
  PlanExportTest() {
    mlir::DialectRegistry registry;
    registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    // A module with a second block needs an op that branches; none of the
    // registered dialects has one.
    context.allowUnregisteredDialects();
  }

  /// What exportModule says about `text` (which must parse and verify);
  /// empty when it exports.
  std::string exportError(const std::string &text,
                          const import::TokenizerSource &tokenizer = {}) {
    mlir::OwningOpRef<mlir::ModuleOp> module =
        mlir::parseSourceString<mlir::ModuleOp>(text, &context);
    EXPECT_TRUE(module) << "the test module does not parse:\n" << text;
    if (!module)
      return "(no module)";
    kvrt::ArtifactWriter writer;
    kvrt::Status status = exporter::exportModule(*module, import::ModelConfig(),
                                                 tokenizer, {}, writer);
    if (status) {
      plan = writer.manifest().plan();
      tensors.assign(writer.manifest().tensors().begin(),
                     writer.manifest().tensors().end());
    }
    return status ? "" : status.message();
  }

  mlir::MLIRContext context;
  kvrt::schema::Plan plan;
  std::vector<kvrt::schema::Tensor> tensors;
};

TEST_F(PlanExportTest, TheDecoderExports) {
  EXPECT_EQ(exportError(kDecoder), "");
  // embedding, rms_norm, linear, reshape, rope, append, attention,
  // reshape, swiglu, add, lm_head.
  EXPECT_EQ(plan.calls_size(), 11);
}

TEST_F(PlanExportTest, NoForward) {
  EXPECT_EQ(exportError(replaced(kDecoder, "@forward", "@decode")),
            "the module has no @forward function to compile");
  EXPECT_EQ(exportError("func.func private @forward(tensor<?xi32>, "
                        "tensor<?xi32>) -> tensor<?x4xf32>"),
            "the module has no @forward function to compile");
}

TEST_F(PlanExportTest, ForwardSignature) {
  EXPECT_EQ(exportError(replaced(kDecoder, "%positions: tensor<?xi32>)",
                                 "%positions: tensor<?xi32>, %extra: i1)")),
            "@forward must take (tokens, positions) and return logits");
}

TEST_F(PlanExportTest, ControlFlow) {
  EXPECT_EQ(exportError(replaced(kDecoder, "  return %logits",
                                 "  \"test.br\"()[^next] : () -> ()\n"
                                 "^next:\n  return %logits")),
            "@forward must be a single block: the plan has no control flow");
}

TEST_F(PlanExportTest, OpWithoutKernel) {
  EXPECT_EQ(exportError(replaced(
                kDecoder, "  %logits =",
                "  %late = arith.mulf %x, %s : tensor<?x4xf32> loc(\"gate\")\n"
                "  %logits =")),
            "'arith.mulf' (gate) has no kernel in the runtime; the plan can "
            "hold embedding, rms_norm, linear, reshape, rope, append, "
            "attention, add, swiglu, lm_head, evict (kv.score with "
            "kv.evict) and prefetch");
}

TEST_F(PlanExportTest, WeightElementType) {
  std::string text = replaced(
      kDecoder,
      "  %logits = kv.lm_head %r, %eye : tensor<?x4xf32>, "
      "tensor<4x4xf32>",
      "  %wide = arith.constant dense<[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, "
      "0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]> : tensor<4x4xf64> "
      "loc(\"head\")\n"
      "  %logits = kv.lm_head %r, %wide : tensor<?x4xf32>, tensor<4x4xf64>");
  EXPECT_EQ(exportError(text), "'arith.constant' (head) holds f64 weights; "
                               "the artifact stores f32, f16 or bf16");
}

TEST_F(PlanExportTest, WeightNotAConstant) {
  EXPECT_EQ(
      exportError(replaced(kDecoder,
                           "kv.lm_head %r, %eye : tensor<?x4xf32>, "
                           "tensor<4x4xf32>",
                           "kv.lm_head %r, %x : tensor<?x4xf32>, "
                           "tensor<?x4xf32>")),
      "'kv.lm_head' (lm_head) takes a weight that is not a constant tensor of "
      "static shape");
}

TEST_F(PlanExportTest, SplatWeight) {
  EXPECT_EQ(exportError(replaced(kDecoder, "dense<[1.0, 2.0, 3.0, 4.0]>",
                                 "dense<1.0>")),
            "'arith.constant' (gain): a weight must be a dense_resource or a "
            "non-splat dense constant");
}

TEST_F(PlanExportTest, ElidedWeight) {
  EXPECT_EQ(exportError(replaced(kDecoder, "dense<[1.0, 2.0, 3.0, 4.0]>",
                                 "dense_resource<gain_blob>")),
            "'arith.constant' (gain): weight 'gain_blob' has no data (an "
            "elided resource cannot be compiled)");
}

TEST_F(PlanExportTest, WeightBytes) {
  // A blob of 3 floats (after the 4-byte alignment word) for 4 elements.
  std::string text =
      replaced(kDecoder, "dense<[1.0, 2.0, 3.0, 4.0]>",
               "dense_resource<gain_blob>") +
      "{-#\n  dialect_resources: {\n    builtin: {\n      gain_blob: "
      "\"0x04000000000080400000004000000040\"\n    }\n  }\n#-}\n";
  EXPECT_EQ(exportError(text), "'arith.constant' (gain): weight 'gain_blob' "
                               "holds 12 bytes, its type 16");
}

TEST_F(PlanExportTest, ActivationFromAConstant) {
  std::string text = replaced(
      kDecoder, "%r = arith.addf %x, %s",
      "%r = arith.addf %x, %s : tensor<?x4xf32> loc(\"residual\")\n"
      "  %fixed = arith.constant dense<[[1.0, 2.0, 3.0, 4.0]]> : "
      "tensor<1x4xf32> loc(\"fixed\")\n"
      "  %twice = arith.addf %fixed, %fixed : tensor<1x4xf32> loc(\"twice\")\n"
      "  %unused = arith.addf %x, %s");
  EXPECT_EQ(exportError(text), "'arith.addf' (twice) reads a value made by "
                               "'arith.constant' (fixed), which is not an "
                               "activation the runtime computes");
}

TEST_F(PlanExportTest, StaticTokenDimension) {
  std::string text =
      replaced(kDecoder, "  %h = kv.rms_norm",
               "  %fixed = kv.linear %x, %eye : tensor<?x4xf32>, "
               "tensor<4x4xf32> -> tensor<1x4xf32> loc(\"fixed\")\n"
               "  %h = kv.rms_norm");
  EXPECT_EQ(exportError(text),
            "'kv.linear' (fixed) must produce a tensor of shape [tokens, ...] "
            "with a dynamic token dimension");
}

TEST_F(PlanExportTest, DynamicDimensionBesideTokens) {
  EXPECT_EQ(exportError(replaced(
                kDecoder, "  %qr =",
                "  %odd = tensor.expand_shape %q [[0, 1], [2]] output_shape "
                "[%n, %n, 4] : tensor<?x4xf32> into tensor<?x?x4xf32> "
                "loc(\"odd_heads\")\n  %qr =")),
            "'tensor.expand_shape' (odd_heads) has a dynamic dimension "
            "besides the tokens");
}

TEST_F(PlanExportTest, BatchInputs) {
  EXPECT_EQ(
      exportError(replaced(kDecoder, "%eye[%tokens]", "%eye[%positions]")),
      "'kv.embedding' (embed) must read the batch's token ids "
      "(@forward's argument) directly: the runtime supplies them, it "
      "does not compute them");
  EXPECT_EQ(exportError(replaced(kDecoder, "%q3, %positions theta",
                                 "%q3, %tokens theta")),
            "'kv.rope' (q_rope) must read the batch's positions (@forward's "
            "argument) directly: the runtime supplies them, it does not "
            "compute them");
}

TEST_F(PlanExportTest, CacheLayers) {
  std::string secondCache = replaced(
      kDecoder, "  %cache1 =",
      "  %again = kv.cache layer 0 : !kv.cache<heads = 1, head_dim = 4> "
      "loc(\"again\")\n  %cache1 =");
  EXPECT_EQ(exportError(secondCache),
            "'kv.cache' (again) opens the cache of layer 0 a second time");
  std::string layer = "kv.cache layer 0";
  EXPECT_EQ(exportError(replaced(kDecoder, layer, "kv.cache layer 1")),
            "@forward has no kv.cache for layer 0; the caches must be layers 0 "
            "to N-1");
  // The verifier refuses negative layers; the artifact numbers them in 32
  // bits.
  EXPECT_EQ(exportError(replaced(kDecoder, layer, "kv.cache layer 4294967296")),
            "'kv.cache' (cache) has layer 4294967296");
}

TEST_F(PlanExportTest, Fp8PerHeadNeedsCalibration) {
  std::string type = "!kv.cache<heads = 1, head_dim = 4>";
  std::string fp8 =
      "!kv.cache<heads = 1, head_dim = 4, key = #kv.fp8<e4m3, scale = "
      "per_head>>";
  std::string text = kDecoder;
  for (size_t at; (at = text.find(type)) != std::string::npos;)
    text.replace(at, type.size(), fp8);
  EXPECT_EQ(exportError(text),
            "'kv.cache' (cache) stores keys as fp8 with per_head scales, "
            "which come from calibration, and the cache has no kv.key_absmax "
            "statistics; pass --calibrate FILE (or --calibration stats.json) "
            "to kvopt compile, or use scale=dynamic");
}

/// kDecoder with `score` (a kv.score and a kv.evict under `policy`)
/// inserted before `before`, and `cacheAttributes` on its kv.cache.
std::string evicting(const std::string &policy,
                     const std::string &cacheAttributes = "",
                     const std::string &before = "  %a2 =",
                     const std::string &queries = "%qr") {
  std::string text = kDecoder;
  if (!cacheAttributes.empty())
    text = replaced(text, "kv.cache layer 0 :",
                    "kv.cache layer 0 {" + cacheAttributes + "} :");
  return replaced(
      text, before,
      "  %scores = kv.score %cache1 policy(" + policy + ") queries " + queries +
          " : !kv.cache<heads = 1, head_dim = 4>, tensor<?x1x4xf32> -> "
          "tensor<?x1xf32> loc(\"score\")\n"
          "  %evicted = kv.evict %cache1 by %scores policy(" +
          policy +
          ") : !kv.cache<heads = 1, head_dim = 4>, tensor<?x1xf32> "
          "loc(\"evict\")\n" +
          before);
}

/// The calibrated query statistics of one query head of 4 coordinates.
constexpr const char *kQueryStatistics =
    "kv.query_center = dense<[[[1.0, 2.0], [3.0, 4.0]]]> : tensor<1x2x2xf32>, "
    "kv.query_magnitude = dense<[[5.0, 6.0]]> : tensor<1x2xf32>";

TEST_F(PlanExportTest, EvictionFollowsTheAttention) {
  ASSERT_EQ(exportError(evicting(
                "#kv.triattention<budget = 0.25, window = 8, interval = 16, "
                "sinks = 2, horizon = 512>",
                kQueryStatistics)),
            "");
  // The score exports nothing; the evict call comes right after the
  // attention and reads the slot of the rope's queries.
  ASSERT_EQ(plan.calls_size(), 12);
  EXPECT_EQ(plan.calls(6).kernel(), "attention");
  const kvrt::schema::KernelCall &call = plan.calls(7);
  EXPECT_EQ(call.kernel(), "evict");
  EXPECT_EQ(call.name(), "evict");
  ASSERT_EQ(call.inputs_size(), 1);
  EXPECT_EQ(call.inputs(0), plan.calls(4).outputs(0)); // q_rope
  EXPECT_EQ(call.outputs_size(), 0);
  const kvrt::schema::EvictParams &e = call.evict();
  EXPECT_EQ(e.layer(), 0u);
  EXPECT_EQ(e.method(), kvrt::schema::EVICT_METHOD_TRIATTENTION);
  EXPECT_EQ(e.budget_case(), kvrt::schema::EvictParams::kBudgetFraction);
  EXPECT_EQ(e.budget_fraction(), 0.25);
  EXPECT_EQ(e.window(), 8u);
  EXPECT_EQ(e.interval(), 16u);
  EXPECT_EQ(e.sinks(), 2u);
  EXPECT_EQ(e.observe(), 0u);
  EXPECT_EQ(e.kernel(), 0u);
  EXPECT_EQ(e.horizon(), 512u);
  // TriAttention's calibrated statistics become two f32 tensors.
  ASSERT_EQ(call.tensors_size(), 2);
  const kvrt::schema::Tensor &center = tensors.at(call.tensors(0));
  const kvrt::schema::Tensor &magnitude = tensors.at(call.tensors(1));
  EXPECT_EQ(center.name(), "layers.0.evict.query_center");
  EXPECT_EQ(center.dtype(), kvrt::schema::DTYPE_F32);
  EXPECT_EQ(std::vector<int64_t>(center.shape().begin(), center.shape().end()),
            (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(magnitude.name(), "layers.0.evict.query_magnitude");
  EXPECT_EQ(
      std::vector<int64_t>(magnitude.shape().begin(), magnitude.shape().end()),
      (std::vector<int64_t>{1, 2}));
}

TEST_F(PlanExportTest, EvictionParametersOfEachMethod) {
  ASSERT_EQ(exportError(evicting("#kv.snapkv<budget = 256, observe = 16, "
                                 "kernel = 3>")),
            "");
  const kvrt::schema::EvictParams &snapkv = plan.calls(7).evict();
  EXPECT_EQ(snapkv.method(), kvrt::schema::EVICT_METHOD_SNAPKV);
  EXPECT_EQ(snapkv.budget_case(), kvrt::schema::EvictParams::kBudgetTokens);
  EXPECT_EQ(snapkv.budget_tokens(), 256u);
  EXPECT_EQ(snapkv.window(), 128u);
  EXPECT_EQ(snapkv.observe(), 16u);
  EXPECT_EQ(snapkv.kernel(), 3u);
  EXPECT_EQ(snapkv.heads(), kvrt::schema::EVICT_HEADS_SHARED);
  EXPECT_EQ(plan.calls(7).tensors_size(), 0);

  ASSERT_EQ(exportError(evicting("#kv.h2o<budget = 4096 : ui32>")), "");
  EXPECT_EQ(plan.calls(7).evict().method(), kvrt::schema::EVICT_METHOD_H2O);
  EXPECT_EQ(plan.calls(7).evict().budget_tokens(), 4096u);
  EXPECT_EQ(plan.calls(7).evict().heads(), kvrt::schema::EVICT_HEADS_SHARED);
  ASSERT_EQ(exportError(evicting("#kv.h2o<budget = 512, heads = each>")), "");
  EXPECT_EQ(plan.calls(7).evict().heads(), kvrt::schema::EVICT_HEADS_EACH);

  ASSERT_EQ(exportError(evicting("#kv.streaming<budget = 1.0>")), "");
  const kvrt::schema::EvictParams &streaming = plan.calls(7).evict();
  EXPECT_EQ(streaming.method(), kvrt::schema::EVICT_METHOD_STREAMING);
  EXPECT_EQ(streaming.budget_fraction(), 1.0);
  EXPECT_EQ(streaming.window(), 0u);
  EXPECT_EQ(streaming.sinks(), 4u);
  EXPECT_EQ(streaming.interval(), 128u);
  // StreamingLLM keeps the same entries in every KV head.
  EXPECT_EQ(streaming.heads(), kvrt::schema::EVICT_HEADS_SHARED);
}

TEST_F(PlanExportTest, TriAttentionNeedsCalibration) {
  EXPECT_EQ(exportError(evicting("#kv.triattention<budget = 0.5>")),
            "'kv.evict' (evict) evicts from layer 0 by TriAttention, which "
            "scores with calibrated query centres, and the layer's kv.cache "
            "has no kv.query_center and kv.query_magnitude statistics; pass "
            "--calibrate FILE (or --calibration stats.json) to kvopt compile, "
            "or evict with another method");
  // Statistics of two query heads for an attention of one.
  EXPECT_EQ(exportError(
                evicting("#kv.triattention<budget = 0.5>",
                         "kv.query_center = dense<1.0> : tensor<2x2x2xf32>, "
                         "kv.query_magnitude = dense<1.0> : tensor<2x2xf32>")),
            "'kv.evict' (evict): the calibrated query centres of layer 0 "
            "describe 2 query heads but the layer's attention has 1");
}

TEST_F(PlanExportTest, EvictionAfterTheAttentionOnly) {
  EXPECT_EQ(exportError(evicting("#kv.h2o<budget = 0.5>", "", "  %a =")),
            "'kv.evict' (evict) evicts from layer 0 before the layer's "
            "attention; the runtime compacts a cache after the attention "
            "that reads it (the kv-evict pass puts it there)");
  EXPECT_EQ(exportError(replaced(
                evicting("#kv.h2o<budget = 0.5>"),
                "scale = 0.5 :", "scale = 0.5 {sliding_window = 64} :")),
            "'kv.evict' (evict) evicts from layer 0, which attends through a "
            "sliding window; the runtime's eviction assumes every cached "
            "entry is visible to the next query");
}

TEST_F(PlanExportTest, EvictionReadsTheRopedQueries) {
  EXPECT_EQ(
      exportError(evicting("#kv.h2o<budget = 0.5>", "", "  %a2 =", "%q3")),
      "'kv.evict' (evict) scores layer 0 with queries that no kv.rope "
      "made; the runtime reads the layer's RoPE from the rope call "
      "that makes its attention's queries");
}

TEST_F(PlanExportTest, ReturnsLogits) {
  EXPECT_EQ(exportError(
                replaced(replaced(kDecoder, "return %logits : tensor<?x4xf32>",
                                  "return %r : tensor<?x4xf32>"),
                         "  %logits = kv.lm_head", "  %unused = kv.lm_head")),
            "'func.return' (return): @forward must return the logits of a "
            "kv.lm_head");
}

TEST_F(PlanExportTest, TokenizerTheRuntimeCannotRebuild) {
  import::TokenizerSource tokenizer;
  tokenizer.tokenizerJson = "{\"model\": {\"type\": \"WordPiece\"}}";
  tokenizer.sourceName = "model/tokenizer.json";
  std::string error = exportError(kDecoder, tokenizer);
  EXPECT_EQ(error.rfind("model/tokenizer.json", 0), 0u) << error;
  EXPECT_NE(error.find("WordPiece"), std::string::npos) << error;
}

} // namespace

/// kDecoder's attention reading a kv.select of `queries` and `cache`.
std::string selecting(const std::string &queries, const std::string &cache) {
  return replaced(
      kDecoder,
      "  %a = kv.attention %qr, %cache1 at %positions scale = 0.5 : "
      "tensor<?x1x4xf32>, !kv.cache<heads = 1, head_dim = 4>, tensor<?xi32> "
      "-> tensor<?x1x4xf32> loc(\"attention\")",
      "  %sel = kv.select " + queries + ", " + cache +
          " policy(#kv.twolevel<block = 16, top_blocks = 4, top_tokens = 32>) "
          ": tensor<?x1x4xf32>, !kv.cache<heads = 1, head_dim = 4> -> "
          "tensor<?x1x32xi32> loc(\"select\")\n"
          "  %a = kv.attention %qr, %cache1 at %positions scale = 0.5 selected "
          "%sel : tensor<?x1x4xf32>, !kv.cache<heads = 1, head_dim = 4>, "
          "tensor<?xi32>, tensor<?x1x32xi32> -> tensor<?x1x4xf32> "
          "loc(\"attention\")");
}

TEST_F(PlanExportTest, SelectionGoesIntoTheAttentionCall) {
  EXPECT_EQ(exportError(selecting("%qr", "%cache1")), "");
  // kv.select has no call of its own.
  ASSERT_EQ(plan.calls_size(), 11);
  const kvrt::schema::KernelCall &attention = plan.calls(6);
  ASSERT_EQ(attention.kernel(), "attention");
  ASSERT_TRUE(attention.attention().has_select());
  EXPECT_EQ(attention.attention().select().block(), 16u);
  EXPECT_EQ(attention.attention().select().top_blocks(), 4u);
  EXPECT_EQ(attention.attention().select().top_tokens(), 32u);
}

TEST_F(PlanExportTest, SelectionOfOtherQueriesOrCache) {
  const char *expected =
      "'kv.attention' (attention) attends to a selection that is not a "
      "kv.select of its own queries and cache; the runtime selects from the "
      "queries it attends with (the kv-sparse-select pass puts the pair "
      "there)";
  EXPECT_EQ(exportError(selecting("%q3", "%cache1")), expected);
  EXPECT_EQ(exportError(selecting("%qr", "%cache")), expected);
}

/// selecting()'s module with `prefetch` (an op's text) after the attention.
std::string prefetching(const std::string &prefetch) {
  return replaced(selecting("%qr", "%cache1"), "  %a2 = tensor.collapse_shape",
                  prefetch +
                      " loc(\"prefetch\")\n  %a2 = tensor.collapse_shape");
}

TEST_F(PlanExportTest, PrefetchIsACallAfterTheAttention) {
  EXPECT_EQ(exportError(prefetching(
                "  kv.prefetch %cache1 mode = next_step selected %sel "
                "{device_pages = 9 : i64, runners_up = 2 : i32} : "
                "!kv.cache<heads = 1, head_dim = 4>, tensor<?x1x32xi32>")),
            "");
  ASSERT_EQ(plan.calls_size(), 12);
  const kvrt::schema::KernelCall &prefetch = plan.calls(7);
  ASSERT_EQ(prefetch.kernel(), "prefetch");
  EXPECT_EQ(prefetch.prefetch().device_pages(), 9u);
  EXPECT_EQ(prefetch.prefetch().runners_up(), 2u);
  EXPECT_EQ(prefetch.prefetch().mode(), kvrt::schema::PREFETCH_MODE_NEXT_STEP);
}

TEST_F(PlanExportTest, PrefetchNeedsTheSelectionAndABudget) {
  EXPECT_EQ(exportError(prefetching(
                "  kv.prefetch %cache1 mode = next_step {device_pages = 9 : "
                "i64} : !kv.cache<heads = 1, head_dim = 4>")),
            "'kv.prefetch' (prefetch) prefetches for layer 0 without the "
            "selection its attention reads; the runtime predicts pages from "
            "that selection (kv-offload after kv-sparse-select puts it "
            "there)");
  EXPECT_EQ(exportError(prefetching(
                "  kv.prefetch %cache1 mode = next_step selected %sel : "
                "!kv.cache<heads = 1, head_dim = 4>, tensor<?x1x32xi32>")),
            "'kv.prefetch' (prefetch) has no device budget (device_pages or "
            "device_ratio); kv-offload sets one");
}
