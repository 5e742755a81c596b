//===- CudaHostTest.cpp - The cuda backend's host decisions ---------------===//
//
// What the cuda backend decides before it launches anything: its page
// bookkeeping, the plan length its graphs key on, which projections
// convert their inputs or run as one GEMM, which adds run inside a norm,
// the decode kernels' launch plans and refusals, the page layouts it
// reads, and for sparse selection the pages a prefill's summaries are
// rebuilt for and the workspace every selecting layer shares. No GPU is
// needed: CI runs these; the kernels themselves are checked on the GPU
// machine (test/cuda).
//
//===----------------------------------------------------------------------===//
#include "../runtime/LlamaArtifact.h"

#include "kvrt/ArtifactWriter.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/DecoderKernels.h"
#include "runtime/src/backends/cuda/DeviceEviction.h"
#include "runtime/src/backends/cuda/DeviceKvPool.h"
#include "runtime/src/backends/cuda/LatentKeyOperands.h"
#include "runtime/src/backends/cuda/PageLedger.h"
#include "runtime/src/backends/cuda/SideLayout.h"
#include "runtime/src/backends/cuda/SparseKernels.h"
#include "runtime/src/backends/cuda/SparseSelect.h"
#include "runtime/src/backends/cuda/StepPlanning.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/evict/Select.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

namespace kvrt::cuda {
namespace {

TEST(PageLedger, ReservesAllOrNothingInTokenOrder) {
  PageLedger ledger(16, 5);
  ASSERT_TRUE(ledger.addSequence(1));
  ASSERT_TRUE(ledger.addSequence(2));
  EXPECT_EQ(ledger.addSequence(1).message(),
            "sequence 1 is already in the device cache");
  // 17 tokens take two pages, 1 token one; the lowest pages go first.
  ASSERT_TRUE(ledger.reserve({{1, 17}, {2, 1}}));
  EXPECT_EQ(ledger.pages(1), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(ledger.pages(2), (std::vector<int32_t>{2}));
  ledger.setLength(1, 17);
  ledger.setLength(2, 1);
  // Room reserved is not reserved again; more pages than are free: none.
  ASSERT_TRUE(ledger.reserve({{1, 15}}));
  EXPECT_EQ(ledger.pages(1).size(), 2u);
  Status full = ledger.reserve({{1, 16}, {2, 48}});
  EXPECT_EQ(full.message(),
            "the device KV cache is full: the batch needs 4 more pages of 16 "
            "tokens and 2 are free; raise EngineOptions::cacheTokens or "
            "finish sequences");
  EXPECT_TRUE(full.isCacheFull()) << "a scheduler could not preempt for it";
  EXPECT_EQ(ledger.pages(1).size(), 2u);
  EXPECT_EQ(ledger.pages(2).size(), 1u);
  EXPECT_EQ(ledger.pagesInUse(), 3u);
  // A removed sequence's pages serve the next one.
  ledger.removeSequence(1);
  EXPECT_FALSE(ledger.contains(1));
  EXPECT_EQ(ledger.pagesInUse(), 1u);
  ASSERT_TRUE(ledger.addSequence(3));
  ASSERT_TRUE(ledger.reserve({{3, 64}}));
  std::set<int32_t> pages(ledger.pages(3).begin(), ledger.pages(3).end());
  EXPECT_EQ(pages, (std::set<int32_t>{0, 1, 3, 4}));
  EXPECT_EQ(ledger.peakPages(), 5u);
}

TEST(PageLedger, APageTakenAgainIsAnotherGenerationAndNamesItsPool) {
  // Offload names a device copy by page and generation: a freed page's
  // copy must not pass for the next sequence's page.
  PageLedger ledger(16, 1,
                    "the KV cache (its offloaded layers in pinned "
                    "host memory)");
  ASSERT_TRUE(ledger.addSequence(1));
  ASSERT_TRUE(ledger.reserve({{1, 16}}));
  const uint32_t first = ledger.generation(0);
  ledger.removeSequence(1);
  ASSERT_TRUE(ledger.addSequence(2));
  ASSERT_TRUE(ledger.reserve({{2, 16}}));
  EXPECT_EQ(ledger.pages(2), (std::vector<int32_t>{0}));
  EXPECT_NE(ledger.generation(0), first);
  EXPECT_EQ(ledger.reserve({{2, 33}}).message(),
            "the KV cache (its offloaded layers in pinned host memory) is "
            "full: the batch needs 2 more pages of 16 tokens and 0 are free; "
            "raise EngineOptions::cacheTokens or finish sequences");
}

TEST(PageLedger, AForkSharesWholePagesUntilNoSequenceHoldsThem) {
  PageLedger ledger(16, 6);
  ASSERT_TRUE(ledger.addSequence(1));
  ASSERT_TRUE(ledger.reserve({{1, 40}}));
  ledger.setLength(1, 40);
  EXPECT_EQ(ledger.share(1, 2, 24).message(),
            "cannot share 24 tokens of sequence 1: not whole pages of the 40 "
            "it holds");
  EXPECT_FALSE(ledger.share(1, 2, 48).isOk());
  EXPECT_FALSE(ledger.contains(2));
  ASSERT_TRUE(ledger.share(1, 2, 32));
  EXPECT_EQ(ledger.pages(2), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(ledger.length(2), 32u);
  EXPECT_EQ(ledger.pagesInUse(), 3u) << "shared pages counted twice";
  EXPECT_NE(ledger.slot(2), ledger.slot(1));
  // The fork's next token goes to a page of its own.
  ASSERT_TRUE(ledger.reserve({{2, 1}}));
  EXPECT_EQ(ledger.pages(2), (std::vector<int32_t>{0, 1, 3}));
  // Its source gone, the fork keeps the shared pages; then all are free.
  ledger.removeSequence(1);
  EXPECT_EQ(ledger.pagesInUse(), 3u);
  ledger.removeSequence(2);
  EXPECT_EQ(ledger.pagesInUse(), 0u);
  ASSERT_TRUE(ledger.addSequence(3));
  EXPECT_TRUE(ledger.reserve({{3, 96}})) << "a shared page leaked";
}

TEST(PageLedger, SequencesTakeTheLowestSlotsAndReuseFreedOnes) {
  // The exact-token stores have one row per slot: slots stay few and
  // stable while a sequence lives.
  PageLedger ledger(16, 4);
  for (uint64_t sequence : {10, 11, 12})
    ASSERT_TRUE(ledger.addSequence(sequence));
  EXPECT_EQ(ledger.slot(10), 0u);
  EXPECT_EQ(ledger.slot(11), 1u);
  EXPECT_EQ(ledger.slot(12), 2u);
  EXPECT_EQ(ledger.slots(), 3u);
  ledger.removeSequence(11);
  ASSERT_TRUE(ledger.addSequence(13));
  EXPECT_EQ(ledger.slot(13), 1u);
  EXPECT_EQ(ledger.slot(12), 2u);
  EXPECT_EQ(ledger.slots(), 3u);
  ASSERT_TRUE(ledger.addSequence(14));
  EXPECT_EQ(ledger.slot(14), 3u);
  EXPECT_EQ(ledger.slots(), 4u);
}

TEST(PlanLength, CoversTheLengthWithinAQuarterAndChangesRarely) {
  std::set<uint32_t> distinct;
  uint32_t previous = 0;
  for (uint32_t length = 1; length <= 131072; ++length) {
    const uint32_t planned = planLength(length);
    ASSERT_GE(planned, length);
    ASSERT_GE(planned, previous) << length;
    if (length > 256)
      ASSERT_LE(planned, length + length / 4) << length;
    distinct.insert(planned);
    previous = planned;
  }
  // Four plans an octave from 256 to 128K: a 128K generation captures
  // about 40 graphs, not one per token.
  EXPECT_LE(distinct.size(), 40u);
}

/// A random 3-layer Llama's plan, with the artifact its steps point into.
struct RandomLlamaPlan {
  test::RandomLlama model = test::makeRandomLlama(3);
  ArtifactWriter writer;
  PlanSteps plan;
  RandomLlamaPlan() {
    EXPECT_TRUE(test::buildLlama(writer, model.config, model.weights, {}));
    plan = planSteps(writer.manifest().plan());
  }
};

TEST(Bf16Inputs, EveryProjectionFindsItsInputInTheBuffer) {
  const RandomLlamaPlan llama;
  const test::RandomLlama &model = llama.model;
  const PlanSteps &plan = llama.plan;
  const Bf16Inputs bf16 = planBf16Inputs(plan.steps);
  // Replay the one bf16 buffer: a writer fills it, a converting projection
  // refills it, the LM head (which gathers its rows) clobbers it.
  int64_t held = kNoStep;
  int conversions = 0, writes = 0;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep &s = plan.steps[i];
    if (bf16.writes[i]) {
      ++writes;
      held = int64_t(i);
    }
    if (s.kernel == Kernel::LMHead)
      held = kNoStep;
    if (s.kernel != Kernel::Linear)
      continue;
    if (bf16.converts[i]) {
      ++conversions;
      held = s.producers[0];
    }
    EXPECT_EQ(held, s.producers[0]) << "step " << i;
  }
  // Per layer only o_proj (fed by attention) converts; the two norms and
  // SwiGLU write the buffer for q/k/v, gate/up and down.
  const int layers = int(model.config.num_layers());
  EXPECT_EQ(conversions, layers);
  EXPECT_EQ(writes, 3 * layers);
}

TEST(FusedProjections, QkvAndGateUpRunAsOneGemmEachPerLayer) {
  const RandomLlamaPlan llama;
  const test::RandomLlama &model = llama.model;
  const PlanSteps &plan = llama.plan;
  const FusedProjections fused = planFusedProjections(plan.steps);
  const int layers = int(model.config.num_layers());
  ASSERT_EQ(fused.groups.size(), size_t(2 * layers));
  const schema::ModelConfig &c = model.config;
  const int64_t headDim =
      c.head_dim() ? c.head_dim() : c.hidden_size() / c.num_heads();
  const int64_t q = c.num_heads() * headDim, kv = c.num_kv_heads() * headDim;
  const int64_t mlp = c.intermediate_size();
  for (int l = 0; l < layers; ++l) {
    const FusedProjection &qkv = fused.groups[size_t(2 * l)];
    const FusedProjection &gateUp = fused.groups[size_t(2 * l + 1)];
    EXPECT_EQ(qkv.offsets, (std::vector<int64_t>{0, q, q + kv}));
    EXPECT_EQ(qkv.width, q + 2 * kv);
    EXPECT_EQ(gateUp.offsets, (std::vector<int64_t>{0, mlp}));
    EXPECT_EQ(gateUp.width, 2 * mlp);
  }
  EXPECT_EQ(fused.widest, std::max(q + 2 * kv, 2 * mlp));
  // Every member reads one input; every reader of a member takes it from
  // the member's columns, and runs before the next group's GEMM.
  int64_t strided = 0;
  for (size_t g = 0; g < fused.groups.size(); ++g) {
    const FusedProjection &group = fused.groups[g];
    const size_t next = g + 1 < fused.groups.size()
                            ? fused.groups[g + 1].members[0]
                            : plan.steps.size();
    for (size_t k = 0; k < group.members.size(); ++k) {
      const size_t m = group.members[k];
      EXPECT_EQ(plan.steps[m].kernel, Kernel::Linear);
      EXPECT_EQ(fused.memberOf[m], int32_t(g));
      EXPECT_EQ(plan.steps[m].producers[0],
                plan.steps[group.members[0]].producers[0]);
      for (size_t j = 0; j < plan.steps.size(); ++j)
        for (size_t i = 0; i < plan.steps[j].producers.size(); ++i) {
          if (plan.steps[j].producers[i] != int64_t(m) ||
              plan.steps[j].kernel == Kernel::Reshape)
            continue;
          const StridedInput &in = fused.inputs[j][i];
          EXPECT_EQ(in.group, int32_t(g)) << "step " << j;
          EXPECT_EQ(in.offset, group.offsets[k]);
          EXPECT_EQ(in.stride, group.width);
          EXPECT_LT(j, next) << "step " << j << " reads group " << g
                             << " after the next group's GEMM";
          ++strided;
        }
    }
  }
  // Per layer: rope of q and of k, the append of v, SwiGLU's two inputs.
  EXPECT_EQ(strided, 5 * layers);
  // Nothing else reads a scratch.
  int64_t marked = 0;
  for (const std::vector<StridedInput> &inputs : fused.inputs)
    for (const StridedInput &in : inputs)
      marked += in.group >= 0;
  EXPECT_EQ(marked, strided);
}

TEST(FoldedAdds, EveryResidualAddRunsInsideTheNormAfterIt) {
  const RandomLlamaPlan llama;
  const test::RandomLlama &model = llama.model;
  const PlanSteps &plan = llama.plan;
  const FoldedAdds folded = planFoldedAdds(plan.steps);
  // A layer's two adds: the attention's, read by the norm before the MLP,
  // and the MLP's, read by the next layer's first norm (the last one's by
  // the final norm).
  int adds = 0, norms = 0;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep &s = plan.steps[i];
    if (s.kernel == Kernel::Add) {
      ++adds;
      EXPECT_TRUE(folded.folded[i]) << "step " << i;
    }
    if (folded.addOf[i] == kNoStep)
      continue;
    ++norms;
    const size_t add = size_t(folded.addOf[i]);
    EXPECT_EQ(s.kernel, Kernel::RmsNorm);
    EXPECT_EQ(s.producers[0], int64_t(add));
    EXPECT_EQ(s.dim, s.inputWidth);
    for (size_t j = add + 1; j < i; ++j)
      EXPECT_EQ(plan.steps[j].kernel, Kernel::Reshape) << "step " << j;
  }
  EXPECT_EQ(adds, 2 * int(model.config.num_layers()));
  EXPECT_EQ(norms, adds);
}

TEST(KernelLimits, ANormWiderThanARegisterRowIsRefusedByName) {
  RandomLlamaPlan llama;
  std::vector<PlanStep> &steps = llama.plan.steps;
  EXPECT_TRUE(checkKernelLimits(steps, "tiny.kvpkg"));
  auto norm = std::find_if(steps.begin(), steps.end(), [](const PlanStep &s) {
    return s.kernel == Kernel::RmsNorm;
  });
  ASSERT_NE(norm, steps.end());
  norm->dim = kNormMaxDim;
  EXPECT_TRUE(checkKernelLimits(steps, "tiny.kvpkg"));
  norm->dim = kNormMaxDim + 1;
  const Status refused = checkKernelLimits(steps, "tiny.kvpkg");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.message().rfind("tiny.kvpkg: ", 0), 0u)
      << refused.message();
  EXPECT_NE(refused.message().find("rows of 8193 values"), std::string::npos)
      << refused.message();
  EXPECT_NE(refused.message().find("at most 8192"), std::string::npos)
      << refused.message();
}

TEST(FoldedRopes, EachLayersRopesRunInsideItsAppend) {
  const RandomLlamaPlan llama;
  const PlanSteps &plan = llama.plan;
  const std::vector<PlanStep> &steps = plan.steps;
  const FoldedRopes folded = planFoldedRopes(steps);
  int appends = 0, ropes = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    ropes += steps[i].kernel == Kernel::Rope;
    if (folded.keyRopeOf[i] == kNoStep) {
      EXPECT_EQ(folded.queryRopeOf[i], kNoStep) << "step " << i;
      continue;
    }
    ++appends;
    ASSERT_EQ(steps[i].kernel, Kernel::Append);
    const size_t k = size_t(folded.keyRopeOf[i]);
    const size_t q = size_t(folded.queryRopeOf[i]);
    ASSERT_NE(folded.queryRopeOf[i], kNoStep) << "step " << i;
    EXPECT_EQ(steps[i].producers[0], int64_t(k));
    EXPECT_EQ(steps[k].kernel, Kernel::Rope);
    EXPECT_EQ(steps[q].kernel, Kernel::Rope);
    EXPECT_NE(q, k);
    EXPECT_TRUE(folded.folded[k] && folded.folded[q]);
    // Only ropes and reshapes between them and the append; the keys' only
    // reader is the append, the queries' readers all come after it.
    for (size_t j = std::min(q, k) + 1; j < i; ++j)
      EXPECT_TRUE(steps[j].kernel == Kernel::Rope ||
                  steps[j].kernel == Kernel::Reshape)
          << "step " << j;
    for (size_t j = 0; j < steps.size(); ++j) {
      if (steps[j].kernel == Kernel::Reshape)
        continue;
      for (int64_t producer : steps[j].producers) {
        if (producer == int64_t(k))
          EXPECT_EQ(j, i);
        if (producer == int64_t(q))
          EXPECT_GT(j, i);
      }
    }
  }
  EXPECT_EQ(appends, int(llama.model.config.num_layers()));
  EXPECT_EQ(ropes, 2 * appends);
}

TEST(FoldedRopes, StayWhereTheirOutputIsReadEarlierOrTheirInputRewritten) {
  const RandomLlamaPlan llama;
  const std::vector<PlanStep> &steps = llama.plan.steps;
  const FoldedRopes folded = planFoldedRopes(steps);
  size_t append = 0;
  while (folded.keyRopeOf[append] == kNoStep)
    ++append;
  const size_t k = size_t(folded.keyRopeOf[append]);
  const size_t q = size_t(folded.queryRopeOf[append]);
  size_t attention = append + 1;
  while (steps[attention].kernel != Kernel::Attention)
    ++attention;
  // The keys rotated are read by another step too: neither rope folds.
  std::vector<PlanStep> keysTwice = steps;
  keysTwice[attention].producers.push_back(int64_t(k));
  FoldedRopes got = planFoldedRopes(keysTwice);
  EXPECT_EQ(got.keyRopeOf[append], kNoStep);
  EXPECT_FALSE(got.folded[k] || got.folded[q]);
  // The queries rotated are read before the append: only the keys' folds.
  std::vector<PlanStep> queriesEarly = steps;
  const size_t later = std::max(q, k);
  queriesEarly[later].producers.push_back(int64_t(std::min(q, k)));
  got = planFoldedRopes(queriesEarly);
  if (later == k) {
    EXPECT_EQ(got.keyRopeOf[append], int64_t(k));
    EXPECT_EQ(got.queryRopeOf[append], kNoStep);
  } else {
    EXPECT_EQ(got.keyRopeOf[append], kNoStep);
  }
  // The later rope writes the earlier one's input: the earlier one must
  // run where it is.
  std::vector<PlanStep> overwritten = steps;
  overwritten[later].output = overwritten[std::min(q, k)].inputs[0];
  got = planFoldedRopes(overwritten);
  EXPECT_FALSE(got.folded[std::min(q, k)]);
  // A projection between the ropes and the append refills what they read.
  std::vector<PlanStep> projected = steps;
  for (PlanStep &s : projected)
    for (int64_t &producer : s.producers)
      producer += producer >= int64_t(append);
  PlanStep projection = steps[0];
  projection.kernel = Kernel::Linear;
  projection.producers = {kNoStep};
  projected.insert(projected.begin() + append, projection);
  got = planFoldedRopes(projected);
  EXPECT_EQ(got.keyRopeOf[append + 1], kNoStep);
  EXPECT_FALSE(got.folded[q] || got.folded[k]);
}

DeviceSideLayout layoutOf(const schema::Encoding &encoding, uint32_t headDim,
                          uint32_t pageSize, std::vector<float> scales = {}) {
  CodecContext context;
  context.kvHeads = 8;
  context.headDim = headDim;
  context.scales = std::move(scales);
  StatusOr<std::unique_ptr<Codec>> codec = makeCodec(encoding, context);
  EXPECT_TRUE(codec) << codec.status().message();
  StatusOr<DeviceSideLayout> side =
      deviceSideLayout(encoding, **codec, pageSize);
  EXPECT_TRUE(side) << side.status().message();
  return *side;
}

schema::Encoding encodingOf(schema::EncodingKind kind, uint32_t bits = 0) {
  schema::Encoding e;
  e.set_kind(kind);
  e.set_fp8_format(schema::FP8_FORMAT_E4M3);
  e.set_scale_mode(schema::SCALE_MODE_DYNAMIC);
  e.set_bits(bits);
  return e;
}

TEST(DecodeAttentionPlan, SplitsCoverTheLongestRowInWholeTiles) {
  const DeviceSideLayout bf16 =
      layoutOf(encodingOf(schema::ENCODING_BF16), 128, 16);
  const DeviceSideLayout polar =
      layoutOf(encodingOf(schema::ENCODING_POLAR, 4), 128, 16);
  for (const DeviceSideLayout &side : {bf16, polar})
    for (uint32_t batch : {1u, 8u, 32u})
      for (uint32_t length : {1u, 100u, 8192u, 32768u, 131072u}) {
        DecodeAttentionShape shape{batch, 32, 8, 128, 16, length, side, side};
        StatusOr<DecodeAttentionPlan> plan = planDecodeAttention(shape, 132);
        ASSERT_TRUE(plan) << plan.status().message();
        EXPECT_GE(uint64_t(plan->splits) * plan->splitTokens, length);
        EXPECT_LT(uint64_t(plan->splits - 1) * plan->splitTokens, length);
        EXPECT_EQ(plan->splitTokens % plan->tileTokens, 0u);
        EXPECT_LE(plan->sharedBytes, 227u * 1024);
        // 4-bit polar's code table (EveryGroupMmaCacheFitsFourBlocksAnSm
        // checks that four blocks still fit an SM).
        if (side.kind == DeviceSideLayout::Kind::Polar)
          EXPECT_EQ(plan->staticSharedBytes, polarCodeTableBytes(4));
        // Partials only when they are used.
        const size_t rows = size_t(batch) * 32;
        const size_t partials =
            plan->splits > 1 ? rows * plan->splits * (128 + 2) * 4 : 0;
        EXPECT_EQ(plan->workspaceBytes, partials);
      }
}

TEST(DecodeAttentionPlan, GroupMmaSplitsFillOneWaveEvenly) {
  const DeviceSideLayout polar =
      layoutOf(encodingOf(schema::ENCODING_POLAR, 4), 128, 16);
  // B = 1, L = 32K: 8 rows, so 64 splits of 512 (one wave of 4 blocks on
  // each of 132 SMs), not 128 of 256 (two waves).
  DecodeAttentionShape one{1, 32, 8, 128, 16, 32768, polar, polar};
  StatusOr<DecodeAttentionPlan> plan = planDecodeAttention(one, 132);
  ASSERT_TRUE(plan) << plan.status().message();
  EXPECT_EQ(plan->splits, 64u);
  EXPECT_EQ(plan->splitTokens, 512u);
  // B = 1, L = 8K: no split shorter than 256 tokens (four tiles).
  DecodeAttentionShape shortRow{1, 32, 8, 128, 16, 8192, polar, polar};
  plan = planDecodeAttention(shortRow, 132);
  ASSERT_TRUE(plan) << plan.status().message();
  EXPECT_EQ(plan->splits, 32u);
  EXPECT_EQ(plan->splitTokens, 256u);
  // B = 32 over 4129 tokens: the splits the clamp to 1024 tokens leaves
  // share them evenly, no fifth split of 33 tokens.
  DecodeAttentionShape many{32, 32, 8, 128, 16, 4129, polar, polar};
  plan = planDecodeAttention(many, 132);
  ASSERT_TRUE(plan) << plan.status().message();
  EXPECT_EQ(plan->splits, 5u);
  EXPECT_EQ(plan->splitTokens, 832u);
}

TEST(DecodeAttentionPlan, RefusesWhatTheKernelsCannotRead) {
  const DeviceSideLayout bf16 =
      layoutOf(encodingOf(schema::ENCODING_BF16), 128, 16);
  const DeviceSideLayout fp8 =
      layoutOf(encodingOf(schema::ENCODING_FP8), 128, 16);
  auto refusal = [](DecodeAttentionShape shape) {
    StatusOr<DecodeAttentionPlan> plan = planDecodeAttention(shape, 132);
    return plan ? std::string("accepted") : plan.status().message();
  };
  EXPECT_EQ(refusal({1, 32, 8, 96, 16, 10, bf16, bf16}),
            "decode attention on CUDA takes head dimensions 64 and 128, not "
            "96");
  EXPECT_EQ(refusal({1, 32, 2, 128, 16, 10, bf16, bf16}),
            "decode attention on CUDA needs query heads that are 1 to 8 times "
            "the KV heads, not 32 for 2");
  EXPECT_EQ(refusal({1, 32, 8, 128, 12, 10, bf16, bf16}),
            "decode attention on CUDA needs a page size of 4, 8, 16 or a "
            "multiple of 32, not 12");
  EXPECT_EQ(refusal({1, 32, 8, 128, 16, 10, bf16, fp8}),
            "decode attention on CUDA needs keys and values in one encoding "
            "(bf16, fp8 e4m3, nvfp4, or polar or kivi of one width), bf16 "
            "keys with low-rank values, or low-rank keys with bf16 values or "
            "low-rank values of rank up to 64");
  // Every width reads keys and values through one table of levels.
  for (uint32_t bits : {2u, 3u, 4u}) {
    const DeviceSideLayout side =
        layoutOf(encodingOf(schema::ENCODING_POLAR, bits), 128, 16);
    DeviceSideLayout otherCodebook = side;
    otherCodebook.levelHalves[1] ^= 1;
    EXPECT_EQ(refusal({1, 32, 8, 128, 16, 10, side, otherCodebook}),
              "decode attention on CUDA reads " + std::to_string(bits) +
                  "-bit polar keys and values through one codebook, and "
                  "theirs differ");
    EXPECT_EQ(refusal({1, 32, 8, 128, 16, 10, side, side}), "accepted");
  }
  const DeviceSideLayout polar =
      layoutOf(encodingOf(schema::ENCODING_POLAR, 4), 128, 16);
  // GroupMma reads an entry's scale right after its codes, at a constant.
  DeviceSideLayout movedScale = polar;
  movedScale.scaleOffset = 0;
  EXPECT_EQ(refusal({1, 32, 8, 128, 16, 10, movedScale, movedScale}),
            "decode attention's keys entries keep their scale at byte 0, not "
            "at 64 after the codes");
  // H2O's mass is added over codes alone.
  EXPECT_EQ(refusal({1, 32, 8, 128, 16, 10, polar, polar, 68, true}),
            "decode attention on CUDA adds H2O's attention mass over codes "
            "alone, not beside exact tokens or latent values");
}

TEST(DecodeAttentionPlan, AddingMassKeepsTheSplitsAndWidensTheWorkspace) {
  const DeviceSideLayout fp8 =
      layoutOf(encodingOf(schema::ENCODING_FP8), 128, 16);
  for (uint32_t length : {100u, 32768u}) {
    DecodeAttentionShape shape{8, 32, 8, 128, 16, length, fp8, fp8};
    const DecodeAttentionPlan plain = *planDecodeAttention(shape, 132);
    shape.addsMass = true;
    const DecodeAttentionPlan mass = *planDecodeAttention(shape, 132);
    EXPECT_TRUE(mass.addsMass);
    EXPECT_EQ(mass.splits, plain.splits);
    EXPECT_EQ(mass.splitTokens, plain.splitTokens);
    // A float per query row and token of every split.
    EXPECT_EQ(mass.workspaceBytes,
              plain.workspaceBytes +
                  size_t(8) * 32 * mass.splits * mass.splitTokens * 4);
  }
}

TEST(SummaryBuilds, ListEveryPageARunWroteWithItsStoredSlots) {
  const std::vector<int32_t> table = {7, 3, 9};
  std::vector<int32_t> pages, slots;
  // Tokens 10 to 40 of pages of 16: pages 7 and 3 full, 9 up to slot 9.
  summaryBuilds(table, 10, 41, 16, pages, slots);
  EXPECT_EQ(pages, (std::vector<int32_t>{7, 3, 9}));
  EXPECT_EQ(slots, (std::vector<int32_t>{16, 16, 9}));
  // Appended: a run ending on a page's last slot, one of a single token,
  // an empty one.
  pages.clear();
  slots.clear();
  summaryBuilds(table, 0, 32, 16, pages, slots);
  summaryBuilds(table, 32, 33, 16, pages, slots);
  summaryBuilds(table, 33, 33, 16, pages, slots);
  EXPECT_EQ(pages, (std::vector<int32_t>{7, 3, 9}));
  EXPECT_EQ(slots, (std::vector<int32_t>{16, 16, 1}));
}

TEST(SparseWorkspace, ServesEveryBatchUpToItsLargestWithinTheBudget) {
  const DeviceSideLayout bf16 =
      layoutOf(encodingOf(schema::ENCODING_BF16), 128, 64);
  // Llama-3-8B's layers with kv-sparse-select's two-level defaults, rows
  // up to its 131072 positions.
  const SparsePolicy policy{64, 128, 2048};
  const SparseDecodeShape llama{0, 32, 8, 128, 64, 131072, bf16, bf16, policy};
  const size_t budget = 256u << 20;
  StatusOr<SparseWorkspaceSize> size =
      sizeSparseWorkspace({llama, llama}, 65535, budget, 132);
  ASSERT_TRUE(size) << size.status().message();
  EXPECT_GE(size->maxBatch, 32u);
  EXPECT_LE(size->bytes, budget);
  auto bytes = [&](uint32_t batch, uint32_t length) {
    SparseDecodeShape shape = llama;
    shape.batch = batch;
    shape.maxLength = length;
    StatusOr<SparseDecodePlan> plan = planSparseDecode(shape, 132);
    return plan ? plan->workspaceBytes : ~size_t(0);
  };
  // Every group up to maxBatch rows, of any shorter length, fits; one more
  // row would pass the budget.
  for (uint32_t n = 1; n <= size->maxBatch; ++n)
    for (uint32_t length : {1u, 4096u, 32768u, 131072u})
      EXPECT_LE(bytes(n, length), size->bytes) << n << " rows of " << length;
  EXPECT_GT(bytes(size->maxBatch + 1, 131072), budget);
  // Fewer rows than the budget allows: all of them.
  StatusOr<SparseWorkspaceSize> few =
      sizeSparseWorkspace({llama}, 3, budget, 132);
  ASSERT_TRUE(few);
  EXPECT_EQ(few->maxBatch, 3u);
  EXPECT_EQ(few->bytes, bytes(3, 131072));
  // fp8, nvfp4 and 2- to 4-bit polar caches are read; polar keys and
  // values of different bits, or keys and values apart, are refused.
  SparseDecodeShape fp8 = llama, nvfp4 = llama, polar4 = llama, polar3 = llama,
                    polar2 = llama;
  fp8.key = fp8.value = layoutOf(encodingOf(schema::ENCODING_FP8), 128, 64);
  nvfp4.key = nvfp4.value =
      layoutOf(encodingOf(schema::ENCODING_NVFP4), 128, 64);
  polar4.key = polar4.value =
      layoutOf(encodingOf(schema::ENCODING_POLAR, 4), 128, 64);
  polar3.key = polar3.value =
      layoutOf(encodingOf(schema::ENCODING_POLAR, 3), 128, 64);
  polar2.key = polar2.value =
      layoutOf(encodingOf(schema::ENCODING_POLAR, 2), 128, 64);
  EXPECT_TRUE(sizeSparseWorkspace({llama, fp8, nvfp4, polar4, polar3, polar2},
                                  8, budget, 132));
  SparseDecodeShape polarMixed = polar4, mixed = llama;
  polarMixed.key = polar3.key;
  mixed.value = fp8.value;
  for (const SparseDecodeShape &shape : {polarMixed, mixed}) {
    StatusOr<SparseWorkspaceSize> refused =
        sizeSparseWorkspace({llama, shape}, 8, budget, 132);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.status().message(),
              "sparse attention on CUDA reads caches whose keys and values "
              "are both bf16, both fp8 e4m3, both nvfp4 or both polar of 2, "
              "3 or 4 bits alike");
  }
}

TEST(SparseDecodePlan, KeepsRotatedQueriesForPolarKeysAlone) {
  const DeviceSideLayout bf16 =
      layoutOf(encodingOf(schema::ENCODING_BF16), 128, 64);
  const DeviceSideLayout polar4 =
      layoutOf(encodingOf(schema::ENCODING_POLAR, 4), 128, 64);
  const SparsePolicy policy{64, 128, 2048};
  SparseDecodeShape shape{8, 32, 8, 128, 64, 32768, bf16, bf16, policy};
  StatusOr<SparseDecodePlan> plain = planSparseDecode(shape, 132);
  shape.key = shape.value = polar4;
  StatusOr<SparseDecodePlan> rotated = planSparseDecode(shape, 132);
  ASSERT_TRUE(plain && rotated);
  // The batch's queries, rotated into the keys' domain, after the rest
  // (256-byte aligned, as every region).
  const size_t queries = 8u * 32 * 128 * 4;
  EXPECT_EQ(plain->rotatedQueriesOffset, plain->workspaceBytes);
  EXPECT_EQ(rotated->rotatedQueriesOffset % 256, 0u);
  EXPECT_EQ(rotated->workspaceBytes, rotated->rotatedQueriesOffset + queries);
  EXPECT_EQ(rotated->rotatedQueriesOffset, plain->workspaceBytes);
  // The ranking launches hold a row's items in shared memory, level 2's
  // with the row's kept blocks after them.
  EXPECT_EQ(rotated->blockRankSharedBytes, size_t(32768 / 64) * 4);
  EXPECT_EQ(rotated->entryRankSharedBytes, size_t(128 * 64 + 128) * 4);
}

TEST(SparseDecodePlan, GivesExactTokensSplitsOfTheirOwn) {
  // Polar-4 with 4 sinks and a window of 128 beside its codes: the sinks
  // the selection lists, the window and the row's own token are read by
  // ceil(133 / 64) splits of the exact tokens after the list's, which
  // hold no newest token; no cluster merges them (a launch of their own).
  const DeviceSideLayout polar4 =
      layoutOf(encodingOf(schema::ENCODING_POLAR, 4), 128, 64);
  SparseDecodeShape shape{
      1, 32, 8, 128, 64, 131072, polar4, polar4, SparsePolicy{64, 128, 2048}};
  StatusOr<SparseDecodePlan> plain = planSparseDecode(shape, 132);
  shape.exactTokens = 4 + 128;
  StatusOr<SparseDecodePlan> exact = planSparseDecode(shape, 132);
  ASSERT_TRUE(plain && exact);
  EXPECT_EQ(plain->exactSplits, 0u);
  EXPECT_EQ(exact->exactSplits, 3u);
  EXPECT_EQ(exact->splitEntries, plain->splitEntries);
  EXPECT_EQ(exact->splits - exact->exactSplits,
            (2048 + exact->splitEntries - 1) / exact->splitEntries);
  EXPECT_FALSE(exact->mergesInCluster);
  // Every split's partial, the exact ones' too.
  EXPECT_GE(exact->rotatedQueriesOffset - exact->partialsOffset,
            size_t(32) * exact->splits * (128 + 2) * 4);
}

TEST(SparseSelect, ReadsAWindowOfExactTokensOnlyThroughCodedLengths) {
  // The selection and summary kernels take a row's coded length (its
  // length less the window) as its length: a call over a cache that keeps
  // a window exact and gives no coded lengths, or one planned for the other
  // kind of cache, is refused before anything is launched.
  const DeviceSideLayout polar4 =
      layoutOf(encodingOf(schema::ENCODING_POLAR, 4), 128, 64);
  SparseDecodeShape shape{
      1, 32, 8, 128, 64, 4096, polar4, polar4, SparsePolicy{64, 16, 512}};
  shape.exactTokens = 4 + 128;
  StatusOr<SparseDecodePlan> plan = planSparseDecode(shape, 132);
  ASSERT_TRUE(plan);
  uint16_t store = 0;
  int32_t words[4] = {};
  SparseDecodeArgs args;
  args.cache.key = args.cache.value = polar4;
  args.cache.pageSize = 64;
  args.cache.kvHeads = 8;
  args.cache.headDim = 128;
  args.cache.lengths = words;
  args.cache.exact.sinks = 4;
  args.cache.exact.window = args.cache.exact.recent = 128;
  args.cache.exact.keys = args.cache.exact.values = &store;
  args.batch = 1;
  args.qHeads = 32;
  args.workspace = words;
  Status refused = selectSparseBlocks(args, *plan, nullptr);
  ASSERT_FALSE(refused.isOk());
  EXPECT_NE(refused.message().find("no lengths of its coded tokens"),
            std::string::npos)
      << refused.message();
  // Planned without exact tokens, given a cache with them.
  shape.exactTokens = 0;
  StatusOr<SparseDecodePlan> plain = planSparseDecode(shape, 132);
  ASSERT_TRUE(plain);
  args.codedLengths = words;
  refused = selectSparseBlocks(args, *plain, nullptr);
  ASSERT_FALSE(refused.isOk());
  EXPECT_NE(refused.message().find("planned for a cache without exact "
                                   "tokens and given one with"),
            std::string::npos)
      << refused.message();
}

TEST(SparseDecodePlan, RefusesRowsWhoseRankingOutgrowsSharedMemory) {
  // Level 2's ranking holds a row's candidates and its kept blocks in
  // 220 KB of shared memory: 56320 words.
  const DeviceSideLayout bf16 =
      layoutOf(encodingOf(schema::ENCODING_BF16), 128, 64);
  auto plan = [&](uint32_t topBlocks) {
    return planSparseDecode({8, 32, 8, 128, 64, 131072, bf16, bf16,
                             SparsePolicy{64, topBlocks, 2048}},
                            132);
  };
  EXPECT_TRUE(plan(860)); // 55040 candidates + 860 blocks
  StatusOr<SparseDecodePlan> refused = plan(870); // 55680 + 870
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.status().message(),
            "sparse selection on CUDA ranks at most 56320 blocks, or "
            "candidates and their blocks, per row, not 56550");
}

TEST(SparseDecodePlan, FillsOneWaveOfTheBlocksAnSmHolds) {
  // Here no device answers, so the plan assumes the Llama-3 shape's
  // occupancy: two scoring blocks and four splits an SM.
  const DeviceSideLayout fp8 =
      layoutOf(encodingOf(schema::ENCODING_FP8), 128, 64);
  const SparsePolicy policy{64, 128, 2048};
  const uint32_t sms = 132;
  for (uint32_t batch : {1u, 2u, 8u})
    for (uint32_t length : {32768u, 131072u}) {
      const SparseDecodeShape shape{batch,  32,  8,   128,   64,
                                    length, fp8, fp8, policy};
      StatusOr<SparseDecodePlan> plan = planSparseDecode(shape, sms);
      ASSERT_TRUE(plan) << plan.status().message();
      const uint32_t rows = batch * 8;
      SCOPED_TRACE(std::to_string(batch) + " x " + std::to_string(length));
      auto fits = [&](uint32_t perRow, uint32_t perSm) {
        return rows * perRow <= perSm * sms;
      };
      EXPECT_TRUE(fits(plan->boundChunks, kSelectBlocksPerMultiprocessor));
      EXPECT_TRUE(fits(plan->scoreChunks, kSelectBlocksPerMultiprocessor));
      // The attention's blocks: a row's newest summary, then its splits.
      EXPECT_TRUE(fits(1 + plan->splits, kSparseSplitBlocksPerMultiprocessor));
      // Every item is covered.
      EXPECT_GE(plan->boundChunks * plan->boundChunkBlocks, plan->maxBlocks);
      EXPECT_GE(plan->scoreChunks * plan->scoreChunkSlots, plan->maxCandidates);
      // Level 2's runs of candidates never cross a chunk.
      EXPECT_EQ(plan->scoreChunkSlots % kRunEntries, 0u);
      EXPECT_GE(plan->splits * plan->splitEntries, policy.topTokens + 1);
    }
  // B = 8, L = 128K on an H100: four chunks a row at each level, seven
  // splits of 320 entries beside the summary's block (against eight, eight
  // and 17 of 128 when the plan aimed at more blocks than fit).
  StatusOr<SparseDecodePlan> plan =
      planSparseDecode({8, 32, 8, 128, 64, 131072, fp8, fp8, policy}, sms);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->boundChunks, 4u);
  EXPECT_EQ(plan->scoreChunks, 4u);
  EXPECT_EQ(plan->splits, 7u);
  EXPECT_EQ(plan->splitEntries, 320u);
  // Level 2's chunks are whole runs of 64, not of 128: where a wave holds
  // 12 chunks a row (here two sequences' 16 KV-head rows on 96 SMs, at
  // the two scoring blocks an SM assumed without a device; on an H100,
  // polar-3 at B = 8 with six an SM),
  // 12 chunks of 704 candidates fill it, where 128's granularity left 11
  // of 768.
  StatusOr<SparseDecodePlan> whole =
      planSparseDecode({2, 32, 8, 128, 64, 131072, fp8, fp8, policy}, 96);
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->scoreChunkSlots, 704u);
  EXPECT_EQ(whole->scoreChunks, 12u);
}

TEST(DeviceKvPool, CountsSummariesOnlyForSelectingLayers) {
  DeviceLayerSpec spec;
  spec.kvHeads = 8;
  spec.headDim = 128;
  EXPECT_EQ(DeviceKvPool::summaryPageBytes(spec, 64), 0u);
  // Per KV head and block of 64: the codes of 128 lower and 128 upper
  // bounds, and an exponent.
  spec.summaryBlock = 64;
  EXPECT_EQ(DeviceKvPool::summaryPageBytes(spec, 64), 8u * 1 * (2 * 128 + 1));
  EXPECT_EQ(DeviceKvPool::summaryPageBytes(spec, 128), 8u * 2 * (2 * 128 + 1));
}

TEST(DeviceKvPool, KiviRingHoldsTheWindowAndTheGroupLeavingIt) {
  DeviceLayerSpec spec;
  spec.kvHeads = 8;
  spec.headDim = 128;
  EXPECT_FALSE(spec.keepsExact());
  // fp8, nvfp4, polar: the window alone.
  spec.exactSinks = 4;
  spec.exactWindow = 64;
  EXPECT_EQ(spec.ringEntries(), 64u);
  EXPECT_EQ(spec.exactSideBytes(), 68u * 8 * 128 * 2);
  // KIVI: its residual and a group; with no residual still a group.
  spec.exactSinks = 0;
  spec.exactWindow = 128;
  spec.flushGroup = 32;
  EXPECT_EQ(spec.ringEntries(), 160u);
  EXPECT_EQ(spec.exactSideBytes(), 160u * 8 * 128 * 2);
  spec.exactWindow = 0;
  EXPECT_TRUE(spec.keepsExact());
  EXPECT_EQ(spec.ringEntries(), 32u);
}

TEST(DeviceSideLayout, MatchesTheCodecsPages) {
  // bf16: 2 bytes a coordinate; fp8 dynamic: codes then an f32 scale;
  // fp8 per_head: the head's scale first; polar 4: codes then an f16
  // scale; nvfp4: nibbles then an e4m3 scale per 16. Areas 16-aligned.
  struct Expect {
    schema::Encoding encoding;
    uint32_t entryBytes, codesOffset, scaleOffset;
    bool slotScales;
    std::vector<float> scales;
  };
  schema::Encoding perHead = encodingOf(schema::ENCODING_FP8);
  perHead.set_scale_mode(schema::SCALE_MODE_PER_HEAD);
  const Expect cases[] = {
      {encodingOf(schema::ENCODING_BF16), 128, 0, 0, false, {}},
      {encodingOf(schema::ENCODING_FP8), 68, 0, 64, true, {}},
      {perHead, 64, 4, 0, false, std::vector<float>(8, 0.5f)},
      {encodingOf(schema::ENCODING_POLAR, 4), 34, 0, 32, true, {}},
      {encodingOf(schema::ENCODING_NVFP4), 36, 0, 32, false, {}},
  };
  for (const Expect &c : cases) {
    const DeviceSideLayout side = layoutOf(c.encoding, 64, 16, c.scales);
    EXPECT_EQ(side.entryBytes, c.entryBytes) << int(c.encoding.kind());
    EXPECT_EQ(side.codesOffset, c.codesOffset) << int(c.encoding.kind());
    EXPECT_EQ(side.scaleOffset, c.scaleOffset) << int(c.encoding.kind());
    EXPECT_EQ(side.slotScales, c.slotScales) << int(c.encoding.kind());
    EXPECT_EQ(side.areaStride % 16, 0u);
    EXPECT_GE(side.areaStride, side.headBytes);
  }
}

TEST(DeviceSideLayout, ExactTokensLeaveThePagesAsTheyAre) {
  // Sinks and a window are kept beside the pages (ExactTokens.h): every
  // token is still encoded into its page, laid out as without them.
  for (schema::Encoding e :
       {encodingOf(schema::ENCODING_POLAR, 4), encodingOf(schema::ENCODING_FP8),
        encodingOf(schema::ENCODING_NVFP4)}) {
    const DeviceSideLayout plain = layoutOf(e, 64, 16, {});
    e.set_residual(128);
    e.set_sinks(4);
    const DeviceSideLayout exact = layoutOf(e, 64, 16, {});
    EXPECT_EQ(exact.entryBytes, plain.entryBytes) << int(e.kind());
    EXPECT_EQ(exact.headBytes, plain.headBytes) << int(e.kind());
    EXPECT_EQ(exact.areaStride, plain.areaStride) << int(e.kind());
  }
}

TEST(DecodeAttentionPlan, ExactTokensTakeASplitPerTileOfADecodeRow) {
  const DeviceSideLayout polar =
      layoutOf(encodingOf(schema::ENCODING_POLAR, 4), 128, 16, {});
  DecodeAttentionShape shape{8, 32, 8, 128, 16, 32768, polar, polar};
  StatusOr<DecodeAttentionPlan> coded = planDecodeAttention(shape, 132);
  ASSERT_TRUE(coded) << coded.status().message();
  // A window of 128: a decode row reads 129 exact tokens, three tiles.
  shape.exactTokens = 128;
  StatusOr<DecodeAttentionPlan> exact = planDecodeAttention(shape, 132);
  ASSERT_TRUE(exact) << exact.status().message();
  EXPECT_EQ(coded->exactSplits, 0u);
  EXPECT_EQ(exact->exactSplits, 3u);
  EXPECT_EQ(exact->splitTokens, coded->splitTokens);
  EXPECT_EQ(exact->splits, coded->splits + 3);
  EXPECT_GT(exact->workspaceBytes, coded->workspaceBytes);
  // 4 sinks and a window of 59: one tile. A single split of the codes
  // still leaves partials to merge.
  shape.exactTokens = 63;
  shape.maxLength = 100;
  exact = planDecodeAttention(shape, 132);
  ASSERT_TRUE(exact) << exact.status().message();
  EXPECT_EQ(exact->exactSplits, 1u);
  EXPECT_EQ(exact->splits, 2u);
}

/// The layout of low-rank values of `rank` for d = headDim, their latent in
/// `latent` shared by groups of `group` KV heads, or why it is refused.
StatusOr<DeviceSideLayout>
latentLayout(uint32_t headDim, uint32_t rank, uint32_t group = 1,
             schema::EncodingKind latent = schema::ENCODING_BF16) {
  schema::Encoding e;
  e.set_kind(schema::ENCODING_LOWRANK);
  e.set_rank(rank);
  e.set_group(group);
  e.mutable_latent()->set_kind(latent);
  e.mutable_latent()->set_fp8_format(schema::FP8_FORMAT_E4M3);
  e.mutable_latent()->set_scale_mode(schema::SCALE_MODE_DYNAMIC);
  CodecContext context;
  context.side = CacheSide::Value;
  context.kvHeads = 8;
  context.headDim = headDim;
  context.basis.assign(size_t(8) * headDim * (rank + 1), 0.25f);
  StatusOr<std::unique_ptr<Codec>> codec = makeCodec(e, context);
  EXPECT_TRUE(codec) << codec.status().message();
  return deviceSideLayout(e, **codec, 16);
}

TEST(DeviceSideLayout, LowRankValuesAreTheirBf16Latents) {
  // rank bf16 coordinates a slot, any rank below the head dimension (an odd
  // one leaves entries 2-byte aligned); beside bf16 keys the Mma kernel
  // reads them, and their sums always reach the merge that maps them back.
  const DeviceSideLayout bf16 =
      layoutOf(encodingOf(schema::ENCODING_BF16), 128, 16);
  for (uint32_t d : {64u, 128u})
    for (uint32_t rank : {1u, 27u, d / 2, d - 1}) {
      StatusOr<DeviceSideLayout> latent = latentLayout(d, rank);
      ASSERT_TRUE(latent) << latent.status().message();
      EXPECT_EQ(latent->kind, DeviceSideLayout::Kind::Latent);
      EXPECT_EQ(latent->rank, rank);
      EXPECT_EQ(latent->entryBytes, 2 * rank);
      EXPECT_EQ(latent->codesOffset, 0u);
      EXPECT_EQ(latent->headBytes, 16u * 2 * rank);
      EXPECT_EQ(latent->areaStride % 16, 0u);
      DeviceSideLayout keys = bf16;
      if (d == 64)
        keys = layoutOf(encodingOf(schema::ENCODING_BF16), 64, 16);
      EXPECT_TRUE(splitKernelReads(SplitKernel::Mma, keys, *latent));
      EXPECT_FALSE(splitKernelReads(SplitKernel::Fma, keys, *latent));
      EXPECT_FALSE(splitKernelReads(SplitKernel::GroupMma, keys, *latent));
      for (uint32_t length : {10u, 32768u}) {
        DecodeAttentionShape shape{8, 32, 8, d, 16, length, keys, *latent};
        StatusOr<DecodeAttentionPlan> plan = planDecodeAttention(shape, 132);
        ASSERT_TRUE(plan) << plan.status().message();
        EXPECT_EQ(plan->kernel, SplitKernel::Mma);
        EXPECT_GE(plan->splits, 2u);
        EXPECT_EQ(plan->workspaceBytes,
                  size_t(8) * 32 * plan->splits * (d + 2) * 4);
        // Even ranks read coordinates in 4-byte pairs (every entry starts
        // 4-byte aligned); ranks up to 64 of 128 put two value tiles in a
        // stage (the kernel's value dimension is half the keys').
        EXPECT_EQ(plan->latentPairs, rank % 2 == 0);
        EXPECT_EQ(plan->valueTilesPerStage, d == 128 && rank <= 64 ? 2u : 1u);
        EXPECT_LE(plan->valueTilesPerStage * 32 * 2 * rank, plan->stageBytes);
        EXPECT_FALSE(planDecodeAttention(shape, 132, SplitKernel::Fma));
      }
    }
  // Other encodings: one value tile a stage, no latent.
  DecodeAttentionShape shape{8, 32, 8, 128, 16, 32768, bf16, bf16};
  StatusOr<DecodeAttentionPlan> plan = planDecodeAttention(shape, 132);
  ASSERT_TRUE(plan) << plan.status().message();
  EXPECT_EQ(plan->valueTilesPerStage, 1u);
  EXPECT_FALSE(plan->latentPairs);
}

TEST(DeviceSideLayout, LowRankRefusalsSayWhatTheGpuReads) {
  StatusOr<DeviceSideLayout> quantized =
      latentLayout(128, 64, 1, schema::ENCODING_FP8);
  ASSERT_FALSE(quantized);
  EXPECT_EQ(quantized.status().message(),
            "the CUDA backend reads low-rank latents stored in bf16, not "
            "quantized ones yet");
  StatusOr<DeviceSideLayout> grouped = latentLayout(64, 64, 2);
  ASSERT_FALSE(grouped);
  EXPECT_EQ(grouped.status().message(),
            "the CUDA backend reads low-rank latents of one KV head each, not "
            "of groups of 2");
  // Latent values beside keys that are not bf16.
  StatusOr<DeviceSideLayout> latent = latentLayout(128, 64);
  ASSERT_TRUE(latent) << latent.status().message();
  const DeviceSideLayout fp8 =
      layoutOf(encodingOf(schema::ENCODING_FP8), 128, 16);
  DecodeAttentionShape shape{1, 32, 8, 128, 16, 10, fp8, *latent};
  StatusOr<DecodeAttentionPlan> plan = planDecodeAttention(shape, 132);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.status().message(),
            "decode attention on CUDA needs keys and values in one encoding "
            "(bf16, fp8 e4m3, nvfp4, or polar or kivi of one width), bf16 "
            "keys with low-rank values, or low-rank keys with bf16 values or "
            "low-rank values of rank up to 64");
}

/// Low-rank keys of `rank` for head dimension `headDim` on a basis whose
/// axes and means are 0.25 and whose weights are 2, rotated by `rope`:
/// their layout (the codec keeps a copy of the RoPE).
DeviceSideLayout latentKeyLayout(uint32_t headDim, uint32_t rank,
                                 const cpu::RopeFrequencies &rope) {
  schema::Encoding e;
  e.set_kind(schema::ENCODING_LOWRANK);
  e.set_rank(rank);
  e.mutable_latent()->set_kind(schema::ENCODING_BF16);
  CodecContext context;
  context.side = CacheSide::Key;
  context.kvHeads = 8;
  context.headDim = headDim;
  context.rope = &rope;
  context.basis.assign(size_t(8) * headDim * (rank + 2), 0.25f);
  for (size_t i = rank; i < context.basis.size(); i += rank + 2)
    context.basis[i] = 2.0f;
  StatusOr<std::unique_ptr<Codec>> codec = makeCodec(e, context);
  EXPECT_TRUE(codec) << codec.status().message();
  StatusOr<DeviceSideLayout> side = deviceSideLayout(e, **codec, 16);
  EXPECT_TRUE(side) << side.status().message();
  return *side;
}

cpu::RopeFrequencies ropeOf(uint32_t headDim, bool interleaved) {
  cpu::RopeFrequencies rope;
  rope.interleaved = interleaved;
  rope.attentionFactor = 1.25;
  for (uint32_t i = 0; i < headDim / 2; ++i)
    rope.inverse.push_back(std::pow(10000.0, -2.0 * i / headDim));
  return rope;
}

TEST(DeviceSideLayout, LowRankKeysAreLatentsTheGroupMmaKernelRebuilds) {
  // rank bf16 coordinates a slot, the RoPE's pairing recorded; GroupMma
  // reads them beside bf16 values or low-rank values of rank up to 64, its
  // blocks holding the KV head's axes (three blocks an SM up to rank 64 of
  // 128), and refuses groups past four query heads.
  const DeviceSideLayout bf16 =
      layoutOf(encodingOf(schema::ENCODING_BF16), 128, 16);
  for (bool interleaved : {false, true})
    for (uint32_t rank : {16u, 27u, 64u, 100u}) {
      const DeviceSideLayout keys =
          latentKeyLayout(128, rank, ropeOf(128, interleaved));
      EXPECT_EQ(keys.kind, DeviceSideLayout::Kind::LatentKey);
      EXPECT_EQ(keys.rank, rank);
      EXPECT_EQ(keys.entryBytes, 2 * rank);
      EXPECT_EQ(keys.ropeInterleaved, interleaved);
      EXPECT_TRUE(splitKernelReads(SplitKernel::GroupMma, keys, bf16));
      EXPECT_FALSE(splitKernelReads(SplitKernel::Mma, keys, bf16));
      DecodeAttentionShape shape{8, 32, 8, 128, 16, 32768, keys, bf16};
      StatusOr<DecodeAttentionPlan> plan = planDecodeAttention(shape, 132);
      ASSERT_TRUE(plan) << plan.status().message();
      EXPECT_EQ(plan->kernel, SplitKernel::GroupMma);
      const uint32_t steps = rank <= 32 ? 2 : rank <= 64 ? 4 : 8;
      EXPECT_EQ(plan->keyRankSteps, steps);
      // Per KV head the axes' fragments and the mean, then the frequencies.
      EXPECT_EQ(plan->keyOperandBytes, 16 * steps * 32 * 8 + 128 * 4 + 64 * 16);
      if (rank <= 64)
        EXPECT_LE(3 * (plan->sharedBytes + 1024), 228u * 1024);
      shape.qHeads = 64;
      StatusOr<DecodeAttentionPlan> wide = planDecodeAttention(shape, 132);
      ASSERT_FALSE(wide);
      EXPECT_EQ(wide.status().message(),
                "decode attention on CUDA reads low-rank keys for groups of "
                "up to 4 query heads per KV head, not 8");
    }
  const DeviceSideLayout keys = latentKeyLayout(128, 64, ropeOf(128, false));
  for (uint32_t rank : {27u, 64u, 65u}) {
    StatusOr<DeviceSideLayout> values = latentLayout(128, rank);
    ASSERT_TRUE(values) << values.status().message();
    DecodeAttentionShape both{8, 32, 8, 128, 16, 32768, keys, *values};
    StatusOr<DecodeAttentionPlan> plan = planDecodeAttention(both, 132);
    EXPECT_EQ(bool(plan), rank <= 64);
    if (plan) {
      // The latent merge maps the sums back: at least two splits, and one
      // value tile a stage.
      EXPECT_EQ(plan->kernel, SplitKernel::GroupMma);
      EXPECT_GE(plan->splits, 2u);
      EXPECT_EQ(plan->valueTilesPerStage, 1u);
    }
  }
}

TEST(LatentKeyOperands, FragmentsHoldTheWeightedAxesTurnsTheAngles) {
  // Lane (g, t) of n-tile n and k-step s holds W[8n + g][16s + 2t, + 1]
  // and [16s + 2t + 8, + 9] in f16, W = U * factor / weight over the
  // rebuilt coordinates (RoPE's pairs half a head apart), zero past the
  // rank; then the mean times factor over the rebuilt coordinates; each
  // frequency's turn times a position, modulo 2^64, is the angle's
  // fraction of a turn.
  const uint32_t d = 64, rank = 20, heads = 2, columns = rank + 2;
  for (bool interleaved : {false, true}) {
    const cpu::RopeFrequencies rope = ropeOf(d, interleaved);
    std::vector<float> basis(size_t(heads) * d * columns);
    for (size_t i = 0; i < basis.size(); ++i)
      basis[i] = i % columns == rank ? 0.5f + float(i % 7)
                                     : float(int(i % 13) - 6) / 8;
    const LatentKeyOperands operands =
        latentKeyOperands(basis, heads, d, rank, rope);
    const uint32_t steps = latentKeyRankSteps(d, rank);
    ASSERT_EQ(steps, 2u);
    const size_t fragmentWords = size_t(d) / 8 * steps * 32 * 2;
    ASSERT_EQ(operands.axes.size(), heads * (fragmentWords + d));
    ASSERT_EQ(latentKeyOperandBytes(d, steps),
              (fragmentWords + d) * 4 + d / 2 * 16);
    for (uint32_t h = 0; h < heads; ++h)
      for (uint32_t c = 0; c < d; ++c) {
        const uint32_t row = latentKeyCoordinate(c, d, interleaved);
        float mean;
        std::memcpy(&mean,
                    &operands.axes[h * (fragmentWords + d) + fragmentWords + c],
                    4);
        EXPECT_EQ(mean,
                  basis[(size_t(h) * d + row) * columns + rank + 1] * 1.25f);
      }
    for (uint32_t h = 0; h < heads; ++h)
      for (uint32_t n = 0; n < d / 8; ++n)
        for (uint32_t s = 0; s < steps; ++s)
          for (uint32_t lane = 0; lane < 32; ++lane) {
            const uint32_t c = 8 * n + lane / 4, t = lane % 4;
            const uint32_t row = latentKeyCoordinate(c, d, interleaved);
            EXPECT_EQ(row,
                      interleaved ? (c < d / 2 ? 2 * c : 2 * c - d + 1) : c);
            const float *axes = &basis[(size_t(h) * d + row) * columns];
            const size_t at = h * (fragmentWords + d) +
                              (((size_t(n) * steps + s) * 32 + lane) * 2);
            for (uint32_t e = 0; e < 4; ++e) {
              const uint32_t j = 16 * s + 2 * t + 8 * (e / 2) + e % 2;
              const uint16_t half =
                  uint16_t(operands.axes[at + e / 2] >> (16 * (e % 2)));
              const double expected =
                  j < rank ? double(axes[j] * 1.25f / axes[rank]) : 0.0;
              EXPECT_NEAR(cpu::f16ToFloat(half), expected,
                          std::abs(expected) * 1e-3);
            }
          }
    ASSERT_EQ(operands.frequencies.size(), size_t(d / 2) * 4);
    for (uint32_t f = 0; f < d / 2; ++f)
      for (int32_t position : {1, 77, 4096, 131071, 1 << 20}) {
        const uint64_t turn = uint64_t(operands.frequencies[4 * f]) |
                              uint64_t(operands.frequencies[4 * f + 1]) << 32;
        const double fraction =
            std::ldexp(double(uint64_t(position) * turn), -64);
        long double angle = (long double)position * rope.inverse[f] /
                            6.283185307179586476925286766559005768L;
        angle -= std::floor(angle);
        EXPECT_NEAR(fraction, double(angle), 1e-12);
      }
    EXPECT_DOUBLE_EQ(operands.rotationScale, 1.0 / 1.25);
  }
}

/// KIVI's layout of `side` for d = headDim, or why it is refused.
StatusOr<DeviceSideLayout> kiviLayout(CacheSide side, uint32_t headDim,
                                      uint32_t bits, uint32_t group,
                                      uint32_t pageSize) {
  schema::Encoding e;
  e.set_kind(schema::ENCODING_INT);
  e.set_bits(bits);
  e.set_group(group);
  CodecContext context;
  context.side = side;
  context.kvHeads = 8;
  context.headDim = headDim;
  StatusOr<std::unique_ptr<Codec>> codec = makeCodec(e, context);
  EXPECT_TRUE(codec) << codec.status().message();
  return deviceSideLayout(e, **codec, pageSize);
}

TEST(DeviceSideLayout, KiviKeysInBlocksValuesPerSlot) {
  // Keys: a block of G rows of codes, then d f16 scales and d f16 zeros;
  // values: codes, then a scale and a zero per G channels. Both take
  // d b / 8 + 4 d / G bytes a token, a page whole groups.
  for (uint32_t d : {64u, 128u})
    for (uint32_t bits : {2u, 4u})
      for (uint32_t group : {32u, 64u})
        for (CacheSide side : {CacheSide::Key, CacheSide::Value}) {
          StatusOr<DeviceSideLayout> layout =
              kiviLayout(side, d, bits, group, 128);
          ASSERT_TRUE(layout) << layout.status().message();
          EXPECT_EQ(layout->kind, DeviceSideLayout::Kind::Kivi);
          EXPECT_EQ(layout->entryBytes, d * bits / 8 + 4 * d / group);
          EXPECT_EQ(layout->headBytes, 128u * layout->entryBytes);
          EXPECT_EQ(layout->group, group);
          EXPECT_EQ(layout->bits, bits);
          EXPECT_FALSE(layout->slotScales);
          DecodeAttentionShape shape{8,    32,      8,       d,  128,
                                     4096, *layout, *layout, 160};
          StatusOr<DecodeAttentionPlan> plan = planDecodeAttention(shape, 132);
          ASSERT_TRUE(plan) << plan.status().message();
          EXPECT_EQ(plan->kernel, SplitKernel::GroupMma);
        }
  StatusOr<DeviceSideLayout> wide =
      kiviLayout(CacheSide::Key, 128, 4, 128, 128);
  ASSERT_FALSE(wide);
  EXPECT_EQ(wide.status().message(),
            "the CUDA backend reads kivi caches in groups of 32 or 64, not "
            "128");
  StatusOr<DeviceSideLayout> small =
      kiviLayout(CacheSide::Value, 128, 4, 32, 16);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.status().message(),
            "the CUDA backend reads kivi caches in pages of whole groups; a "
            "page of 16 tokens is not a multiple of 32");
}

TEST(DecodeAttentionPlan, EveryGroupMmaCacheFitsFourBlocksAnSm) {
  // The GroupMma kernels are bound to four blocks an SM (kMinBlocks): a
  // plan whose shared memory (with the 1 KB each block reserves) leaves
  // room for three only would lose a quarter of the warps without a word.
  // The pages' index list grows with the split, polar's code table 8 or
  // 16 KB of static memory: every cache at every page size and shape.
  struct Cache {
    std::string name;
    DeviceSideLayout key, value;
    uint32_t pageSize;
  };
  std::vector<Cache> caches;
  for (uint32_t pageSize : {16u, 64u, 256u}) {
    const std::string page = " in pages of " + std::to_string(pageSize);
    std::vector<std::pair<std::string, schema::Encoding>> encodings = {
        {"fp8", encodingOf(schema::ENCODING_FP8)},
        {"nvfp4", encodingOf(schema::ENCODING_NVFP4)}};
    for (uint32_t bits : {2u, 3u, 4u})
      encodings.push_back({"polar" + std::to_string(bits),
                           encodingOf(schema::ENCODING_POLAR, bits)});
    for (const auto &[name, encoding] : encodings) {
      const DeviceSideLayout side = layoutOf(encoding, 128, pageSize);
      caches.push_back({name + page, side, side, pageSize});
    }
  }
  for (uint32_t bits : {2u, 4u})
    for (uint32_t group : {32u, 64u})
      for (uint32_t pageSize : {group, 256u}) {
        StatusOr<DeviceSideLayout> keys =
            kiviLayout(CacheSide::Key, 128, bits, group, pageSize);
        StatusOr<DeviceSideLayout> values =
            kiviLayout(CacheSide::Value, 128, bits, group, pageSize);
        ASSERT_TRUE(keys && values);
        caches.push_back({"kivi" + std::to_string(bits) + " in groups of " +
                              std::to_string(group) + ", pages of " +
                              std::to_string(pageSize),
                          *keys, *values, pageSize});
      }
  for (const Cache &cache : caches)
    for (uint32_t batch : {1u, 8u, 32u})
      for (uint32_t length : {8192u, 32768u, 131072u}) {
        SCOPED_TRACE(cache.name + ", B = " + std::to_string(batch) +
                     ", L = " + std::to_string(length));
        DecodeAttentionShape shape{
            batch, 32, 8, 128, cache.pageSize, length, cache.key, cache.value};
        StatusOr<DecodeAttentionPlan> plan = planDecodeAttention(shape, 132);
        ASSERT_TRUE(plan) << plan.status().message();
        ASSERT_EQ(plan->kernel, SplitKernel::GroupMma);
        EXPECT_LE(4 * (plan->sharedBytes + plan->staticSharedBytes + 1024),
                  228u * 1024);
      }
}

TEST(ExactTokens, KiviRowsEncodeTheGroupsTheCpuCacheFlushesNext) {
  // The CPU cache flushes its tail at the start of each call
  // (PagedCache::flushable()); the GPU encodes, in the call before, the
  // groups that flush will take: row x's leavingGroup(). Chunked prefills,
  // a long one and decode steps, for windows of 0 and 128 and groups of 32
  // and 64.
  for (uint32_t recent : {0u, 128u})
    for (uint32_t group : {32u, 64u}) {
      CacheLayerShape shape;
      shape.kvHeads = 1;
      shape.headDim = 8;
      shape.pageSize = 64;
      shape.keyHeadBytes = shape.valueHeadBytes = 64;
      shape.tailWindow = recent;
      shape.flushGroup = group;
      shape.capacityPages = 64;
      PagedCache cache({shape});
      ASSERT_TRUE(cache.addSequence(1));
      std::vector<uint32_t> calls = {128, 128, 44, 700};
      calls.insert(calls.end(), 150, 1);
      const std::vector<float> token(8, 0.5f);
      uint64_t stored = 0;
      std::set<int> encodedByGpu;
      for (uint32_t rows : calls) {
        // The start of a call on the CPU: what its tail flush encodes.
        const uint64_t flushed = cache.flushable(0, 1);
        const uint64_t before = cache.encoded(0, 1);
        cache.flush(0, 1, flushed, [](uint64_t, uint64_t, const Tail &) {});
        EXPECT_EQ(cache.encoded(0, 1),
                  uint64_t(codedTokens(int(stored), int(recent), int(group))))
            << "stored " << stored;
        for (uint64_t first = before; first < before + flushed; first += group)
          EXPECT_EQ(encodedByGpu.count(int(first)), 1u)
              << "group at " << first << ", window " << recent;
        ASSERT_TRUE(cache.reserve({{1, rows}}));
        for (uint32_t r = 0; r < rows; ++r) {
          const int x = int(stored++);
          cache.append(0, 1, x, token.data(), token.data());
          const int first = leavingGroup(x, int(recent), int(group));
          if (first >= 0)
            EXPECT_TRUE(encodedByGpu.insert(first).second) << first;
        }
      }
      // Every group the GPU encoded, the CPU flushes by the next call.
      EXPECT_EQ(uint64_t(encodedByGpu.size()) * group,
                uint64_t(codedTokens(int(stored), int(recent), int(group))));
    }
}

TEST(ExactTokens, KiviCodesGrowAGroupAtATimeBeyondTheWindow) {
  // A window of 128 leaving in groups of 32, as PagedCache::flushable().
  EXPECT_EQ(codedTokens(0, 128, 32), 0);
  EXPECT_EQ(codedTokens(128, 128, 32), 0);
  EXPECT_EQ(codedTokens(159, 128, 32), 0);
  EXPECT_EQ(codedTokens(160, 128, 32), 32);
  EXPECT_EQ(codedTokens(191, 128, 32), 32);
  EXPECT_EQ(codedTokens(192, 128, 32), 64);
  // No window: whole groups only.
  EXPECT_EQ(codedTokens(63, 0, 64), 0);
  EXPECT_EQ(codedTokens(64, 0, 64), 64);
  // fp8, nvfp4, polar: all but the window.
  EXPECT_EQ(codedTokens(200, 64, 1), 136);
  EXPECT_EQ(codedTokens(50, 64, 1), 0);
}

TEST(PageLedger, ShrinkReturnsThePagesBeyondTheKeptTokens) {
  PageLedger ledger(16, 8);
  ASSERT_TRUE(ledger.addSequence(1));
  ASSERT_TRUE(ledger.reserve({{1, 70}}));
  ledger.setLength(1, 70);
  EXPECT_EQ(ledger.pages(1).size(), 5u);
  // 33 tokens fill three pages: the last two go back, the first stay.
  ledger.shrink(1, 33);
  EXPECT_EQ(ledger.length(1), 33u);
  EXPECT_EQ(ledger.pages(1), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(ledger.pagesInUse(), 3u);
  // The next tokens go on in the third page, then in a freed one.
  ASSERT_TRUE(ledger.reserve({{1, 16}}));
  EXPECT_EQ(ledger.pages(1).size(), 4u);
  EXPECT_EQ(ledger.pagesInUse(), 4u);
}

schema::EvictParams evictPlan(uint32_t layer) {
  schema::EvictParams plan;
  plan.set_layer(layer);
  plan.set_method(schema::EVICT_METHOD_TRIATTENTION);
  plan.set_budget_tokens(100);
  plan.set_window(64);
  plan.set_sinks(4);
  plan.set_interval(16);
  return plan;
}

TEST(DeviceEviction, CompactsWhenTheCpuBackendDoesToTheSameCounts) {
  const schema::EvictParams plan = evictPlan(0);
  std::unordered_map<uint64_t, uint64_t> seen;
  // A prefill of 300 tokens beyond the budget is due at once; one of 90 is
  // not; a decode step is due only `interval` entries beyond the budget.
  std::vector<EvictSequence> due =
      dueCompactions(plan, {{7, 300, 300, 299, 0}, {8, 90, 90, 89, 1}}, seen);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].tableRow, 0);
  EXPECT_EQ(due[0].length, 300);
  EXPECT_EQ(due[0].queryPosition, 299);
  // The window is capped at half the budget: 4 sinks, the last 50, and
  // the 46 best between them.
  EXPECT_EQ(due[0].sinks, 4);
  EXPECT_EQ(due[0].recentStart, 250);
  EXPECT_EQ(due[0].free, 46);
  EXPECT_EQ(due[0].kept, 100);
  evict::SelectionParams select;
  select.budget = 100;
  select.sinks = 4;
  select.recent = 50;
  std::vector<float> scores(300, 1.0f);
  EXPECT_EQ(evict::selectKept(scores.data(), 1, 300, 300, select)[0].size(),
            size_t(due[0].kept));
  EXPECT_EQ(seen[7], 300u);
  for (uint64_t length = 101; length < 116; ++length)
    EXPECT_TRUE(dueCompactions(plan, {{7, 1, length, 400, 0}}, seen).empty())
        << length;
  due = dueCompactions(plan, {{7, 1, 116, 401, 0}}, seen);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].kept, 100);
  EXPECT_EQ(seen[7], 316u);
  // A fraction of what the sequence has seen, rounded up.
  schema::EvictParams fraction = plan;
  fraction.set_budget_fraction(0.25);
  std::unordered_map<uint64_t, uint64_t> fresh;
  due = dueCompactions(fraction, {{1, 301, 301, 300, 0}}, fresh);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].kept, 76);
  EXPECT_EQ(due[0].recentStart, 301 - 38);
}

TEST(DeviceEviction, EveryCacheLayerMustEvictAlike) {
  std::vector<EvictCall> calls(2);
  calls[0].plan = evictPlan(0);
  calls[1].plan = evictPlan(1);
  EXPECT_TRUE(checkUniformEviction(calls, {0, 1}));
  const std::string why =
      "the cuda backend keeps one page list and length per sequence for all "
      "layers, so every cache layer must evict by the same method, budget, "
      "window, sinks, interval and heads; ";
  EXPECT_EQ(checkUniformEviction(calls, {0, 1, 2}).message(),
            why + "this artifact evicts from 2 of its 3 cache layers");
  calls[1].plan.set_budget_tokens(200);
  EXPECT_EQ(checkUniformEviction(calls, {0, 1}).message(),
            why + "layers 0 and 1 evict differently");
}

TEST(DeviceEviction, SnapKvRecordsEachSequencesLastObservedRows) {
  // Sequence 5 (slot 2) has rows 0, 1, 2 and 4; sequence 9 (slot 0) rows 3
  // and 5: the last two of each are recorded, in their sequence's slot.
  const uint64_t rows[] = {5, 5, 5, 9, 5, 9};
  const auto slotOf = [](uint64_t sequence) { return sequence == 5 ? 2u : 0u; };
  EXPECT_EQ(observedRowMarks(rows, 6, 2, slotOf),
            (std::vector<int32_t>{-1, -1, 2, 0, 2, 0}));
  EXPECT_EQ(observedRowMarks(rows, 6, 32, slotOf),
            (std::vector<int32_t>{2, 2, 2, 0, 2, 0}));
  EXPECT_EQ(observedRowMarks(rows, 6, 1, slotOf),
            (std::vector<int32_t>{-1, -1, -1, -1, 2, 0}));
}

TEST(DeviceEviction, SnapKvFitsItsObservedRowsInItsWarpsRegisters) {
  // Llama-3-8B: 4 query heads a KV head, 32 queries of 128: 8 tiles of 16
  // rows, one a warp.
  EXPECT_TRUE(snapKvFits(4, 32, 128));
  // Heads of 64 take two tiles a warp: 16.
  EXPECT_TRUE(snapKvFits(2, 64, 64));
  EXPECT_TRUE(snapKvFits(4, 64, 64));
  EXPECT_FALSE(snapKvFits(4, 65, 64));
  // Each head's window is padded to whole tiles: 4 x 3 tiles.
  EXPECT_EQ(snapKvFits(4, 33, 128).message(),
            "SnapKV on the GPU holds a KV head's observed query rows (4 "
            "heads x 33 queries, each head's padded to whole tiles of 16 "
            "rows) in at most 8 tiles for heads of 128 coordinates; observe "
            "fewer queries, or run it on the cpu backend");
  EXPECT_EQ(snapKvFits(8, 32, 16).message(),
            "SnapKV and H2O on the GPU take heads of 64 or 128 coordinates, "
            "not 16; run them on the cpu backend");
  EXPECT_TRUE(h2oFits(4, 128));
  EXPECT_TRUE(h2oFits(128, 128));
  EXPECT_EQ(h2oFits(129, 128).message(),
            "H2O on the GPU holds a row's query heads of one KV head as at "
            "most 128 rows for heads of 128 coordinates, not 129; run it on "
            "the cpu backend");
  EXPECT_FALSE(h2oFits(4, 96));
}

} // namespace
} // namespace kvrt::cuda
