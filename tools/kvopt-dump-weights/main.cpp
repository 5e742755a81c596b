//===- main.cpp - kvopt-dump-weights: what kvopt reads from a model file --===//
//
// Usage: kvopt-dump-weights [--metadata] [--values OUT] MODEL
//
// MODEL is a .gguf file, a .safetensors file, or a Hugging Face folder.
// Prints one JSON object per line on stdout:
//   {"metadata": KEY, "type": TYPE, "value": VALUE}     (with --metadata)
//   {"tensor": NAME, "dtype": DTYPE, "shape": [D0, ...], "values": OFFSET}
// Shapes are slowest dimension first. With --values, every tensor that
// converts to float32 (F32, F16, BF16, Q8_0, Q4_0, Q4_1) is written to OUT
// as little-endian float32, tensors one after another; OFFSET is the byte
// offset of its first value there, null when it was not written. Strings
// are JSON strings, invalid UTF-8 bytes written as \udcXX (Python's
// "surrogateescape"); float NaN and infinities as NaN, Infinity, -Infinity.
// Exits 1 with one sentence on stderr when the file is refused.
//
//===----------------------------------------------------------------------===//
#include "compiler/import/gguf/GgufFile.h"
#include "compiler/import/safetensors/SafetensorsFile.h"

#include "kvrt/Json.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>

using namespace kvopt::formats;

namespace {

void putString(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = s[i];
    char buf[8];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else if (c < 0x80) {
      out += char(c);
    } else {
      // Copy a well-formed UTF-8 sequence whole; escape a stray byte.
      size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (n > 1 && kvrt::json::isValidUtf8(s.substr(i, n))) {
        out.append(s.substr(i, n));
        i += n - 1;
      } else {
        std::snprintf(buf, sizeof buf, "\\udc%02x", c);
        out += buf;
      }
    }
  }
  out += '"';
  std::fputs(out.c_str(), stdout);
}

void putFloat(double x, bool single) {
  if (std::isnan(x))
    std::fputs("NaN", stdout);
  else if (std::isinf(x))
    std::fputs(x > 0 ? "Infinity" : "-Infinity", stdout);
  else
    std::printf(single ? "%.9g" : "%.17g", x);
}

void putValue(const GgufValue &v) {
  if (v.type() == GgufType::Array) {
    std::putchar('[');
    for (uint64_t i = 0; i < v.size(); ++i) {
      if (i)
        std::putchar(',');
      putValue(v.element(i));
    }
    std::putchar(']');
  } else if (const std::string *s = v.asString()) {
    putString(*s);
  } else if (std::optional<bool> b = v.asBool()) {
    std::fputs(*b ? "true" : "false", stdout);
  } else if (std::optional<double> f = v.asFloat()) {
    putFloat(*f, v.type() == GgufType::Float32);
  } else if (std::optional<int64_t> i = v.asInt()) {
    std::printf("%lld", static_cast<long long>(*i));
  } else {
    std::printf("%llu", static_cast<unsigned long long>(*v.asUInt()));
  }
}

void putMetadata(std::string_view key, const std::string &type) {
  std::fputs("{\"metadata\": ", stdout);
  putString(key);
  std::fputs(", \"type\": ", stdout);
  putString(type);
  std::fputs(", \"value\": ", stdout);
}

/// Prints one tensor line and appends its values to `values`, if given.
bool dumpTensor(const TensorInfo &info, const uint8_t *data, FILE *values,
                uint64_t &written) {
  std::fputs("{\"tensor\": ", stdout);
  putString(info.name);
  std::printf(", \"dtype\": \"%s\", \"shape\": [", dtypeName(info.dtype));
  for (size_t i = 0; i < info.shape.size(); ++i)
    std::printf(i ? ", %lld" : "%lld", static_cast<long long>(info.shape[i]));
  std::fputs("], \"values\": ", stdout);
  std::vector<float> floats(values ? info.numElements() : 0);
  if (values &&
      dequantizeToF32(info.dtype, data, floats.size(), floats.data())) {
    std::printf("%llu}\n", static_cast<unsigned long long>(written));
    if (std::fwrite(floats.data(), sizeof(float), floats.size(), values) !=
        floats.size())
      return false;
    written += floats.size() * sizeof(float);
  } else {
    std::fputs("null}\n", stdout);
  }
  return true;
}

int fail(const std::string &message) {
  std::fprintf(stderr, "kvopt-dump-weights: %s\n", message.c_str());
  return 1;
}

bool isGguf(const std::string &path) {
  char magic[4] = {};
  FILE *f = std::fopen(path.c_str(), "rb");
  bool gguf = f && std::fread(magic, 1, 4, f) == 4 &&
              std::memcmp(magic, "GGUF", 4) == 0;
  if (f)
    std::fclose(f);
  return gguf;
}

} // namespace

int main(int argc, char **argv) {
  bool metadata = false;
  std::string valuesPath, model;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--metadata")
      metadata = true;
    else if (arg == "--values" && i + 1 < argc)
      valuesPath = argv[++i];
    else if (model.empty() && arg[0] != '-')
      model = arg;
    else
      return fail("usage: kvopt-dump-weights [--metadata] [--values OUT] "
                  "MODEL");
  }
  if (model.empty())
    return fail("usage: kvopt-dump-weights [--metadata] [--values OUT] MODEL");

  FILE *values = nullptr;
  if (!valuesPath.empty() && !(values = std::fopen(valuesPath.c_str(), "wb")))
    return fail("cannot write '" + valuesPath + "'");
  uint64_t written = 0;
  bool ok = true;
  struct stat st;
  if (::stat(model.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    kvrt::StatusOr<SafetensorsModel> m = SafetensorsModel::open(model);
    if (!m)
      return fail(m.status().message());
    for (const SafetensorsModel::Found &t : m->tensors())
      ok = ok && dumpTensor(*t.info, t.file->data(*t.info), values, written);
  } else if (isGguf(model)) {
    kvrt::StatusOr<GgufFile> f = GgufFile::open(model);
    if (!f)
      return fail(f.status().message());
    if (metadata)
      for (const auto &[key, value] : f->metadata()) {
        putMetadata(key, value.typeName());
        putValue(value);
        std::fputs("}\n", stdout);
      }
    for (const TensorInfo &t : f->tensors())
      ok = ok && dumpTensor(t, f->data(t), values, written);
  } else {
    kvrt::StatusOr<SafetensorsFile> f = SafetensorsFile::open(model);
    if (!f)
      return fail(f.status().message());
    if (metadata)
      for (const auto &[key, value] : f->metadata()) {
        putMetadata(key, "string");
        putString(value);
        std::fputs("}\n", stdout);
      }
    for (const TensorInfo &t : f->tensors())
      ok = ok && dumpTensor(t, f->data(t), values, written);
  }
  if (values && std::fclose(values) != 0)
    ok = false;
  if (!ok)
    return fail("cannot write '" + valuesPath + "'");
  return 0;
}
