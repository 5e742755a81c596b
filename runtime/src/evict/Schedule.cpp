//===- Schedule.cpp - When a sequence is compacted and to what ------------===//
#include "runtime/src/evict/Schedule.h"
#include "runtime/src/evict/Scores.h"

#include <algorithm>
#include <cmath>

namespace kvrt::evict {

uint64_t budgetFor(const schema::EvictParams &plan, uint64_t seen) {
  if (plan.budget_case() == schema::EvictParams::kBudgetTokens)
    return plan.budget_tokens();
  return uint64_t(std::ceil(plan.budget_fraction() * double(seen)));
}

bool compactionDue(const schema::EvictParams &plan, uint64_t length,
                   uint64_t seen, uint64_t appended) {
  const uint64_t keep = budgetFor(plan, seen);
  return length > keep && (appended > 1 || length >= keep + plan.interval());
}

SelectionParams selectionFor(const schema::EvictParams &plan, uint64_t seen) {
  SelectionParams select;
  select.budget = budgetFor(plan, seen);
  select.sinks = plan.sinks();
  select.recent = std::min<uint64_t>(plan.window(), select.budget / 2);
  select.shared = plan.heads() == schema::EVICT_HEADS_SHARED;
  return select;
}

std::vector<double> futureDistances(const schema::EvictParams &plan) {
  return geometricDistances(plan.horizon() ? double(plan.horizon())
                                           : kReferenceHorizon);
}

HeadAggregation groupCombination(const schema::EvictParams &plan) {
  return plan.combine() == schema::EVICT_COMBINE_ZMAX
             ? HeadAggregation::StandardisedMax
             : HeadAggregation::Mean;
}

} // namespace kvrt::evict
