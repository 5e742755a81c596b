//===- HfConfig.h - Hugging Face config.json ---------------------*- C++
//-*-===//
#ifndef KVOPT_COMPILER_IMPORT_HF_HFCONFIG_H
#define KVOPT_COMPILER_IMPORT_HF_HFCONFIG_H

#include "compiler/import/ModelConfig.h"
#include "kvrt/Status.h"

#include <string>
#include <string_view>

namespace kvopt::import {

/// Reads the decoder hyper-parameters from the text of a config.json for
/// LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or
/// Qwen3ForCausalLM. Errors name `path` and the field.
kvrt::StatusOr<ModelConfig> parseHfConfig(std::string_view text,
                                          const std::string &path);

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_HF_HFCONFIG_H
