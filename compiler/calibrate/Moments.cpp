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

AttentionMomentSums::AttentionMomentSums(int64_t heads, int64_t dim,
                                         int64_t sinks, int64_t window)
    : heads(heads), dim(dim), sinks(sinks), window(window),
      weights(size_t(heads)), products(size_t(heads * dim * dim), 0.0),
      mass(size_t(heads), 0.0) {}

void AttentionMomentSums::addValues(const float *x, int64_t rows) {
  values.insert(values.end(), x, x + rows * heads * dim);
}

bool AttentionMomentSums::addWeights(int64_t position, int64_t head,
                                     const float *w, int64_t group,
                                     uint64_t first, int64_t count) {
  uint64_t tokens = values.size() / size_t(heads * dim);
  if (head < 0 || head >= heads || first + uint64_t(count) > tokens)
    return false;
  std::vector<double> &a = weights[size_t(head)];
  a.resize(size_t(tokens), 0.0);
  for (int64_t i = 0; i < count; ++i) {
    int64_t t = int64_t(first) + i;
    if (t < sinks || position - t < window)
      continue;
    double sum = 0;
    for (int64_t g = 0; g < group; ++g)
      sum += w[g * count + i];
    a[size_t(t)] += sum;
  }
  return true;
}

void AttentionMomentSums::endSequence() {
  size_t d = size_t(dim);
  for (int64_t h = 0; h < heads; ++h) {
    const std::vector<double> &a = weights[size_t(h)];
    double *product = products.data() + size_t(h) * d * d;
    for (size_t t = 0; t < a.size(); ++t) {
      if (a[t] == 0)
        continue;
      const float *v = values.data() + (t * size_t(heads) + size_t(h)) * d;
      for (size_t i = 0; i < d; ++i) {
        double wi = a[t] * double(v[i]);
        double *line = product + i * d;
        for (size_t j = i; j < d; ++j)
          line[j] += wi * double(v[j]);
      }
      mass[size_t(h)] += a[t];
    }
    weights[size_t(h)].clear();
  }
  values.clear();
}

bool AttentionMomentSums::finish(std::vector<double> &moment) const {
  for (double m : mass)
    if (!(m > 0))
      return false;
  size_t d = size_t(dim), base = moment.size();
  moment.resize(base + size_t(heads) * d * d);
  for (int64_t h = 0; h < heads; ++h) {
    const double *product = products.data() + size_t(h) * d * d;
    double *out = moment.data() + base + size_t(h) * d * d;
    for (size_t i = 0; i < d; ++i)
      for (size_t j = i; j < d; ++j)
        out[i * d + j] = out[j * d + i] = product[i * d + j] / mass[size_t(h)];
  }
  return true;
}

} // namespace kvopt::calibrate
