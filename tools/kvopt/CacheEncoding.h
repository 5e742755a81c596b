//===- CacheEncoding.h - An artifact's cache encodings as text --*- C++ -*-===//
#ifndef KVOPT_TOOLS_KVOPT_CACHEENCODING_H
#define KVOPT_TOOLS_KVOPT_CACHEENCODING_H

#include "kvrt/Artifact.h"

#include <optional>
#include <string>

namespace kvopt::cli {

/// "bf16", "int<bits=2 group=32 residual=128>", ...: one encoding with its
/// parameters, as the dialect spells them.
std::string describeEncoding(const kvrt::schema::Encoding &encoding);

/// "triattention, budget 0.25 of the tokens seen, window 128, interval 128,
/// sinks 0" (SnapKV adds its observation window and kernel).
std::string describeEviction(const kvrt::schema::EvictParams &eviction);

/// When every layer evicts alike but for a fractional budget that differs
/// between them (kv-evict{allocate=attention}): the mean fraction and the
/// smallest and largest, as "0.25 of the tokens seen on average (0.125 to
/// 0.5)"; otherwise nothing.
std::optional<std::string>
describeAllocatedBudget(const kvrt::schema::Manifest &manifest);

/// The cache of every layer in a few words for a table: "polar<bits=3
/// seed=0>" when keys and values of all layers agree, "K fp8<...> V bf16"
/// when keys and values differ, and runs of layers ("0-1 bf16, 2-29 ...")
/// when layers differ, or one description with ranges of ranks
/// ("lowrank<rank=8..48 bf16>") when they differ only in low-rank ranks; a
/// layer's eviction follows its encoding ("bf16, h2o 25%"; "bf16,
/// triattention 25% allocated (12.5-50%)" when the layers' fractions
/// differ and nothing else does).
std::string summarizeCache(const kvrt::schema::Manifest &manifest);

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_CACHEENCODING_H
