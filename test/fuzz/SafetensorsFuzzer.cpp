//===- SafetensorsFuzzer.cpp - The safetensors reader on arbitrary bytes --===//
#include "compiler/import/safetensors/SafetensorsFile.h"

#include "FuzzCheck.h"

using namespace kvopt::formats;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto bytes = std::make_shared<const std::vector<uint8_t>>(data, data + size);
  kvrt::StatusOr<SafetensorsFile> file =
      SafetensorsFile::openBuffer("fuzz.safetensors", bytes);
  if (!file) {
    kvopt::fuzz::checkRefusal(file.status(), "fuzz.safetensors");
    return 0;
  }
  // Accepted tensors lie inside the buffer: read every byte of each (the
  // buffer is its own heap block, so AddressSanitizer sees any overrun).
  for (const TensorInfo &t : file->tensors()) {
    kvopt::fuzz::require(t.offset <= size && t.byteSize <= size - t.offset,
                         "tensor outside the file:", t.name);
    kvopt::fuzz::require(dtypeByteSize(t.dtype, t.numElements()) == t.byteSize,
                         "byte size does not match the shape:", t.name);
    std::vector<float> values(t.numElements());
    if (!dequantizeToF32(t.dtype, file->data(t), values.size(), values.data()))
      for (uint64_t i = 0; i < t.byteSize; ++i)
        *static_cast<volatile const uint8_t *>(file->data(t) + i);
    kvopt::fuzz::require(file->find(t.name) == &t, "find() disagrees");
  }
  return 0;
}
