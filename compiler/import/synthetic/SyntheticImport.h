//===- SyntheticImport.h - Models with random weights -----------*- C++ -*-===//
//
// A synthetic model is a preset of Llama shapes with deterministic random
// bf16 weights, for benchmarks on machines that have no model files. The
// weights are either streamed into the artifact as it is written (never
// held in memory) or left for the runtime to generate. Its tokenizer is
// byte-level: one token per byte (ids 0-255, in GPT-2's printable spelling, no
// merges), <|begin_of_text|> (256) and
// <|end_of_text|> (257), the rest of the vocabulary unused tokens.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_IMPORT_SYNTHETIC_SYNTHETICIMPORT_H
#define KVOPT_COMPILER_IMPORT_SYNTHETIC_SYNTHETICIMPORT_H

#include "compiler/import/Importer.h"

#include <string>
#include <vector>

namespace kvopt::import {

/// The preset names, and a line on each (for --help).
std::vector<std::pair<std::string, std::string>> syntheticPresets();

/// Where a synthetic model's weights go.
enum class SyntheticWeights {
  /// Into the artifact's blobs, streamed as it is written.
  Stored,
  /// Nowhere: the artifact says how the runtime generates them.
  Generated,
};

/// The model of the preset `name` with weights drawn from `seed`: projection
/// and embedding weights uniform with standard deviation 0.02, RMSNorm
/// weights 1, the same values whether stored or generated. An unknown name
/// is an error that lists the presets.
kvrt::StatusOr<ImportedModel>
importSynthetic(mlir::MLIRContext &context, const std::string &name,
                uint64_t seed,
                SyntheticWeights where = SyntheticWeights::Stored);

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_SYNTHETIC_SYNTHETICIMPORT_H
