//===- Allocation.h - One eviction budget shared across layers --*- C++ -*-===//
//
// kv-evict{allocate=attention}: the same cache bytes as a fraction `budget`
// of the tokens seen in every layer, shared so that the layers losing more
// attention from eviction keep more. Each layer comes with its calibrated
// loss curve (kv.evict_loss: the attention mass lost at 1/G, 2/G, ..., 1 of
// the entries, 1 at none of them, linear in between); the fractions given
// minimise the sum of the layers' losses, greedily, within bounds.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_POLICY_ALLOCATION_H
#define KVOPT_COMPILER_POLICY_ALLOCATION_H

#include <vector>

namespace kvopt::policy {

/// Fractions, one per curve of `losses` (each of the same G >= 1 points, in
/// [0, 1]), whose mean is `budget`, each in [low, high] (0 < low <= budget
/// <= high <= 1): every layer starts at `low`, then the rest of the budget
/// goes, a piece at a time, to the layers whose curve falls the most per
/// fraction there (all of those at once, in equal parts, up to the next
/// point of one of their curves), never past `high`. For convex curves
/// (what a best-first selection gives) this minimises the sum of the
/// losses; layers with the same curve get the same fraction.
std::vector<double>
allocateFractions(const std::vector<std::vector<float>> &losses, double budget,
                  double low, double high);

} // namespace kvopt::policy

#endif // KVOPT_COMPILER_POLICY_ALLOCATION_H
