//===- Importer.cpp - Dispatch on the kind of model file ------------------===//
#include "compiler/import/Importer.h"
#include "compiler/import/gguf/GgufImport.h"
#include "compiler/import/hf/HfImport.h"
#include "compiler/import/onnx/OnnxImport.h"

#include <sys/stat.h>

namespace kvopt::import {

static bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

kvrt::StatusOr<ImportedModel> importModel(mlir::MLIRContext &context,
                                          const std::string &path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return kvrt::Status::error("'" + path + "' does not exist");
  if (S_ISDIR(st.st_mode))
    return importHuggingFace(context, path);
  if (endsWith(path, ".gguf"))
    return importGguf(context, path);
  if (endsWith(path, ".onnx"))
    return importOnnx(context, path);
  return kvrt::Status::error("'" + path +
                             "' is neither a Hugging Face folder (with "
                             "config.json) nor a .gguf or .onnx file");
}

} // namespace kvopt::import
