//===- GroupAxes.cpp - Axes of a latent shared by a group of KV heads -----===//
#include "passes/GroupAxes.h"
#include "compiler/calibrate/SymmetricEigen.h"

#include <algorithm>

namespace mlir::kv {

GroupAxes groupAxes(DenseFPElementsAttr moment, int64_t heads, int64_t d,
                    int64_t group, const std::vector<double> *weights,
                    bool keys) {
  const int64_t width = heads * d, size = group * d;
  std::vector<float> all(moment.getValues<float>().begin(),
                         moment.getValues<float>().end());
  GroupAxes out;
  out.spectrum.assign(size_t(size), 0.0);
  for (int64_t g = 0; g < heads / group; ++g) {
    const int64_t first = g * size;
    auto weight = [&](int64_t i) {
      return weights ? (*weights)[size_t(first + i)] : 1.0;
    };
    std::vector<double> block(size_t(size * size));
    for (int64_t i = 0; i < size; ++i)
      for (int64_t j = 0; j < size; ++j)
        block[size_t(i * size + j)] =
            weight(i) * double(all[size_t((first + i) * width + first + j)]) *
            weight(j);
    kvopt::calibrate::SymmetricEigen eigen =
        kvopt::calibrate::symmetricEigen(block, size);
    for (int64_t i = 0; i < size; ++i) {
      for (int64_t j = 0; j < size; ++j)
        out.axes.push_back(float(eigen.vectors[size_t(i * size + j)]));
      out.axes.push_back(keys ? float(weight(i)) : 0.0f);
    }
    for (int64_t k = 0; k < size; ++k)
      out.spectrum[size_t(k)] += std::max(eigen.values[size_t(k)], 0.0);
  }
  return out;
}

} // namespace mlir::kv
