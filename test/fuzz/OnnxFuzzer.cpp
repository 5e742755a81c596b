//===- OnnxFuzzer.cpp - The ONNX reader and recogniser on arbitrary bytes -===//
#include "compiler/import/onnx/OnnxDecoder.h"

#include "FuzzCheck.h"

using namespace kvopt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto model = formats::OnnxModel::openBuffer("fuzz.onnx", data, size);
  if (!model) {
    fuzz::checkRefusal(model.status(), "fuzz.onnx");
    return 0;
  }
  kvrt::StatusOr<import::OnnxDecoder> decoder =
      import::recogniseDecoder(**model);
  if (!decoder) {
    fuzz::checkRefusal(decoder.status(), "fuzz.onnx");
    return 0;
  }
  // Every recognised weight reads, or explains why not, as the builder
  // would ask for it: with the shape the initializer claims.
  import::OnnxWeights weights(*model, decoder->weights);
  for (const auto &[name, ref] : decoder->weights) {
    const formats::OnnxTensor *t = (*model)->constant(ref.initializer);
    fuzz::require(t != nullptr, "a recognised weight is missing:", name);
    std::vector<int64_t> shape = t->shape;
    if (ref.transposed && shape.size() == 2)
      std::swap(shape[0], shape[1]);
    kvrt::StatusOr<import::Weight> w = weights.get(name, shape);
    if (!w) {
      fuzz::checkRefusal(w.status(), "fuzz.onnx");
      continue;
    }
    volatile uint8_t sink = 0;
    for (uint64_t i = 0; i < w->byteSize; ++i)
      sink = sink ^ w->data[i];
  }
  return 0;
}
