//===- Moments.cpp - Mean and covariance of per-head vectors --------------===//
#include "compiler/calibrate/Moments.h"

#include <algorithm>

namespace kvopt::calibrate {

MomentSums::MomentSums(int64_t heads, int64_t dim)
    : heads(heads), dim(dim), sums(size_t(heads * dim), 0.0),
      products(size_t(heads * dim * dim), 0.0), row(size_t(dim)) {}

void MomentSums::add(const float *x, int64_t rows) {
  size_t d = size_t(dim);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < heads; ++h) {
      const float *v = x + (r * heads + h) * dim;
      std::copy(v, v + d, row.begin());
      double *sum = sums.data() + size_t(h) * d;
      double *product = products.data() + size_t(h) * d * d;
      for (size_t i = 0; i < d; ++i) {
        sum[i] += row[i];
        double xi = row[i];
        double *line = product + i * d;
        for (size_t j = i; j < d; ++j)
          line[j] += xi * row[j];
      }
    }
  count += uint64_t(rows);
}

void MomentSums::finish(std::vector<double> &mean,
                        std::vector<double> &covariance) const {
  size_t d = size_t(dim), base = covariance.size();
  double n = double(count);
  covariance.resize(base + size_t(heads) * d * d);
  for (int64_t h = 0; h < heads; ++h) {
    const double *sum = sums.data() + size_t(h) * d;
    const double *product = products.data() + size_t(h) * d * d;
    double *out = covariance.data() + base + size_t(h) * d * d;
    for (size_t i = 0; i < d; ++i)
      mean.push_back(sum[i] / n);
    for (size_t i = 0; i < d; ++i)
      for (size_t j = i; j < d; ++j) {
        double c = product[i * d + j] / n - (sum[i] / n) * (sum[j] / n);
        if (i == j)
          c = std::max(c, 0.0);
        out[i * d + j] = out[j * d + i] = c;
      }
  }
}

} // namespace kvopt::calibrate
