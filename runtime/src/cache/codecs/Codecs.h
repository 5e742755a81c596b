//===- Codecs.h - The codec of each encoding kind ---------------*- C++ -*-===//
//
// Internal to libkvrt: makeCodec() dispatches on the encoding's kind to
// these constructors, each of which checks the fields its kind reads.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_CODECS_H
#define KVRT_CACHE_CODECS_CODECS_H

#include "runtime/src/cache/Codec.h"

#include <string>

namespace kvrt::codecs {

using CodecOr = StatusOr<std::unique_ptr<Codec>>;

/// "the keys of layer 3": how refusals name the cache a codec is for.
std::string describeCache(const CodecContext &context);

CodecOr makeF32Codec(const CodecContext &context);
CodecOr makeBf16Codec(const CodecContext &context);
CodecOr makeFp8Codec(const schema::Encoding &encoding,
                     const CodecContext &context);
CodecOr makeNvfp4Codec(const CodecContext &context);
CodecOr makeKiviCodec(const schema::Encoding &encoding,
                      const CodecContext &context);
CodecOr makePolarCodec(const schema::Encoding &encoding,
                       const CodecContext &context);
CodecOr makeLowRankCodec(const schema::Encoding &encoding,
                         const CodecContext &context);

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_CODECS_H
