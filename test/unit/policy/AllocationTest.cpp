//===- AllocationTest.cpp - One eviction budget shared across layers ------===//
#include "compiler/policy/Allocation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

using kvopt::policy::allocateFractions;

namespace {

/// The loss curve of a layer whose queries put `share` of their attention
/// on a `concentrated` fraction of the entries and the rest evenly on the
/// others, as a best-first selection loses it at 1/G, ..., 1.
std::vector<float> curve(double share, double concentrated, int points) {
  std::vector<float> loss;
  for (int j = 1; j <= points; ++j) {
    double kept = double(j) / points;
    double covered =
        kept <= concentrated
            ? share * kept / concentrated
            : share + (1 - share) * (kept - concentrated) / (1 - concentrated);
    loss.push_back(float(std::max(0.0, 1 - covered)));
  }
  return loss;
}

/// The sum of the losses at `fractions`, the curves read as the allocation
/// does: linear between their points, 1 at nothing kept.
double totalLoss(const std::vector<std::vector<float>> &losses,
                 const std::vector<double> &fractions) {
  double total = 0;
  for (size_t l = 0; l < losses.size(); ++l) {
    int points = int(losses[l].size());
    double x = fractions[l] * points;
    int s = std::min(points - 1, int(std::floor(x)));
    double a = s == 0 ? 1.0 : losses[l][size_t(s - 1)],
           b = losses[l][size_t(s)];
    total += a + (b - a) * (x - s);
  }
  return total;
}

TEST(Allocation, KeepsTheTotalBudgetWithinTheBounds) {
  // Four layers from flat attention to attention on 2% of the entries.
  std::vector<std::vector<float>> losses = {
      curve(0.3, 0.5, 20), curve(0.9, 0.02, 20), curve(0.6, 0.1, 20),
      curve(0.8, 0.05, 20)};
  for (double budget : {0.1, 0.25, 0.5}) {
    double low = budget / 2, high = std::min(1.0, budget * 2);
    std::vector<double> f = allocateFractions(losses, budget, low, high);
    ASSERT_EQ(f.size(), losses.size());
    // A sequence of 2047 tokens keeps ceil(f x tokens) per layer: within one
    // token per layer of budget x layers x tokens.
    const double tokens = 2047;
    double kept = 0;
    for (double x : f) {
      EXPECT_GE(x, low);
      EXPECT_LE(x, high);
      kept += std::ceil(x * tokens);
    }
    double target = budget * double(losses.size()) * tokens;
    EXPECT_GE(kept, target - 1e-6);
    EXPECT_LE(kept, target + double(losses.size()));
    EXPECT_NEAR(std::accumulate(f.begin(), f.end(), 0.0),
                budget * double(losses.size()), 1e-9);
    // It loses less attention than the uniform budget.
    EXPECT_LT(totalLoss(losses, f),
              totalLoss(losses, std::vector<double>(losses.size(), budget)));
  }
}

TEST(Allocation, GivesMoreToTheLayerThatLosesMore) {
  // Layer 0 attends to 5% of its entries and loses little below the
  // budget; layer 1 spreads its attention and loses the most per entry
  // evicted.
  std::vector<std::vector<float>> losses = {curve(0.95, 0.05, 20),
                                            curve(0.5, 0.4, 20)};
  std::vector<double> f = allocateFractions(losses, 0.25, 0.125, 0.5);
  EXPECT_LT(f[0], 0.25);
  EXPECT_GT(f[1], 0.25);
  EXPECT_NEAR(f[0] + f[1], 0.5, 1e-12);
  // Swapping the layers swaps the fractions.
  std::vector<double> swapped =
      allocateFractions({losses[1], losses[0]}, 0.25, 0.125, 0.5);
  EXPECT_DOUBLE_EQ(swapped[0], f[1]);
  EXPECT_DOUBLE_EQ(swapped[1], f[0]);
}

TEST(Allocation, StopsAtTheBounds) {
  // Layer 1 loses everything until all is kept: it gets the upper bound,
  // layer 0 what is left, never below the lower one.
  std::vector<float> flat(10, 1.0f);
  flat.back() = 0;
  std::vector<std::vector<float>> losses = {curve(0.99, 0.1, 10), flat};
  std::vector<double> f = allocateFractions(losses, 0.3, 0.15, 0.6);
  EXPECT_DOUBLE_EQ(f[0], 0.3 * 2 - f[1]);
  EXPECT_GE(f[0], 0.15);
  EXPECT_LE(f[1], 0.6);
}

TEST(Allocation, SameCurvesGetTheSameFraction) {
  std::vector<std::vector<float>> losses(5, curve(0.7, 0.2, 20));
  for (double budget : {0.1, 0.23, 0.5})
    for (double f : allocateFractions(losses, budget, budget / 2,
                                      std::min(1.0, 2 * budget)))
      EXPECT_NEAR(f, budget, 1e-12);
}

} // namespace
