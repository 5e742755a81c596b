//===- Statistics.cpp - Calibration statistics into the module ------------===//
#include "compiler/calibrate/Statistics.h"

#include "dialects/kv/IR/KVDialect.h"
#include "dialects/kv/IR/KVOps.h"

#include <cmath>
#include <map>

using kvrt::Status;

namespace kvopt::calibrate {
namespace {

std::string str(int64_t value) { return std::to_string(value); }

/// "1 layer", "2 layers".
std::string count(int64_t n, const std::string &noun) {
  return str(n) + " " + noun + (n == 1 ? "" : "s");
}

/// Checks one statistic of one layer: a finite, non-negative value per head.
Status checkPerHead(const std::vector<float> &values, int64_t kvHeads,
                    const std::string &what, const std::string &origin) {
  if (int64_t(values.size()) != kvHeads)
    return Status::error(origin + ": " + what + " has " + str(values.size()) +
                         " values for " + str(kvHeads) + " KV heads");
  for (size_t head = 0; head < values.size(); ++head)
    if (!std::isfinite(values[head]) || values[head] < 0)
      return Status::error(origin + ": " + what + " of KV head " + str(head) +
                           " is " + std::to_string(values[head]) +
                           "; it must be finite and non-negative");
  return Status::ok();
}

} // namespace

Status attachStatistics(mlir::ModuleOp module, const Statistics &stats,
                        const std::string &origin) {
  std::map<int64_t, mlir::kv::CacheOp> caches;
  mlir::WalkResult walk = module.walk([&](mlir::kv::CacheOp op) {
    if (!caches.emplace(int64_t(op.getLayer()), op).second)
      return mlir::WalkResult::interrupt();
    return mlir::WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return Status::error(origin + ": the module opens a layer's cache twice, "
                                  "so its statistics have no one place");
  int64_t layers = int64_t(stats.layers.size());
  if (int64_t(caches.size()) != layers)
    return Status::error(origin + ": the statistics describe " +
                         count(layers, "layer") + " but the model has " +
                         count(int64_t(caches.size()), "layer"));
  for (auto &[layer, op] : caches) {
    if (layer >= layers)
      return Status::error(origin + ": the model has a cache for layer " +
                           str(layer) + " but the statistics stop at layer " +
                           str(layers - 1));
    auto type = llvm::cast<mlir::kv::CacheType>(op.getType());
    if (type.getHeads() != stats.kvHeads || type.getHeadDim() != stats.headDim)
      return Status::error(origin + ": the statistics describe caches of " +
                           str(stats.kvHeads) + " KV heads of " +
                           str(stats.headDim) + " but layer " + str(layer) +
                           "'s cache has " + str(type.getHeads()) +
                           " KV heads of " + str(type.getHeadDim()));
    std::string prefix = "layer " + str(layer) + "'s ";
    KVRT_RETURN_IF_ERROR(checkPerHead(stats.layers[layer].keyAbsMax,
                                      stats.kvHeads, prefix + "key absmax",
                                      origin));
    KVRT_RETURN_IF_ERROR(checkPerHead(stats.layers[layer].valueAbsMax,
                                      stats.kvHeads, prefix + "value absmax",
                                      origin));
  }

  mlir::MLIRContext *context = module.getContext();
  auto *dialect = context->getLoadedDialect<mlir::kv::KVDialect>();
  const CalibrationSource &source = stats.source;
  dialect->getCalibrationAttrHelper().setAttr(
      module, mlir::kv::CalibrationAttr::get(context, source.file, source.xxh64,
                                             source.tokens, source.window));
  for (auto &[layer, op] : caches) {
    const LayerStatistics &s = stats.layers[layer];
    dialect->getKeyAbsmaxAttrHelper().setAttr(
        op, mlir::DenseF32ArrayAttr::get(context, s.keyAbsMax));
    dialect->getValueAbsmaxAttrHelper().setAttr(
        op, mlir::DenseF32ArrayAttr::get(context, s.valueAbsMax));
  }
  return Status::ok();
}

} // namespace kvopt::calibrate
