//===- Validate.cpp - Checking a manifest ---------------------------------===//
#include "runtime/src/artifact/Validate.h"

#include "kvrt/Artifact.h"
#include "runtime/src/artifact/Plan.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>

namespace kvrt {

std::optional<Kernel> kernelByName(std::string_view name) {
  static const std::pair<std::string_view, Kernel> kernels[] = {
      {"embedding", Kernel::Embedding},
      {"rms_norm", Kernel::RmsNorm},
      {"linear", Kernel::Linear},
      {"reshape", Kernel::Reshape},
      {"rope", Kernel::Rope},
      {"append", Kernel::Append},
      {"attention", Kernel::Attention},
      {"swiglu", Kernel::SwiGLU},
      {"add", Kernel::Add},
      {"lm_head", Kernel::LMHead},
      {"evict", Kernel::Evict},
      {"prefetch", Kernel::Prefetch}};
  for (const auto &[kernelName, kernel] : kernels)
    if (kernelName == name)
      return kernel;
  return std::nullopt;
}

namespace {

using Shape = google::protobuf::RepeatedField<int64_t>;

/// Bounds every dimension and element count, so that products and sizes
/// computed from them never overflow, whatever the manifest says.
constexpr int64_t kMaxDim = int64_t(1) << 31;
constexpr int64_t kMaxElements = int64_t(1) << 40;
/// Most tokens a lowrank cache keeps exact per sequence at either end (the
/// dialect's bound, dialects/kv/IR/KVAttrs.cpp).
constexpr uint32_t kMaxExactTokens = 4096;

std::string str(int64_t v) { return std::to_string(v); }

std::string shapeString(const Shape &shape) {
  std::string s = "[";
  for (int i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + str(shape[i]);
  return s + "]";
}

bool sameShape(const Shape &a, const Shape &b) {
  if (a.size() != b.size())
    return false;
  for (int i = 0; i < a.size(); ++i)
    if (a[i] != b[i])
      return false;
  return true;
}

bool shapeIs(const Shape &a, std::initializer_list<int64_t> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

/// The product of a shape already checked by checkShape().
int64_t elements(const Shape &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

class Validator {
public:
  Validator(const schema::Manifest &m, const std::vector<uint64_t> &blobSizes,
            const std::string &fileName)
      : m(m), blobSizes(blobSizes), file(fileName) {}

  Status run(uint16_t major, uint16_t minor);

private:
  Status fail(const std::string &sentence) const {
    return Status::error(file + ": " + sentence);
  }
  Status positive(const std::string &field, int64_t value) const;
  Status checkShape(const std::string &what, const Shape &shape) const;
  Status checkModel();
  Status checkRope(const std::string &field, const schema::Rope &rope) const;
  Status checkTensors();
  Status checkCache();
  Status checkLowRank(const schema::Encoding &e, const schema::CacheLayout &c,
                      const std::string &side);
  Status checkScaleTensor(const schema::Encoding &e,
                          const schema::CacheLayout &c,
                          const std::string &side);
  Status checkPlan();
  Status checkSelect(const std::string &what, const schema::SelectParams &s,
                     const schema::CacheLayout &c) const;
  Status checkCall(int index, const schema::KernelCall &call, Kernel kernel);
  Status checkTokenizer();

  /// Call `index` for messages: "plan call 7 (model.layers.0.mlp)".
  std::string callName(int index) const;
  const Shape &slotShape(uint32_t slot) const {
    return m.plan().slots(int(slot)).shape();
  }
  const Shape &tensorShape(uint32_t tensor) const {
    return m.tensors(int(tensor)).shape();
  }

  const schema::Manifest &m;
  const std::vector<uint64_t> &blobSizes;
  const std::string &file;
  std::vector<bool> written;
  std::vector<bool> appended;
  /// Layers whose attention selects (the ones a prefetch may follow).
  std::vector<bool> selecting;
  std::vector<bool> isLogits;
};

Status Validator::positive(const std::string &field, int64_t value) const {
  if (value <= 0 || value >= kMaxDim)
    return fail(field + " is " + str(value) +
                "; it must be positive and below 2^31");
  return Status::ok();
}

Status Validator::checkShape(const std::string &what,
                             const Shape &shape) const {
  if (shape.empty())
    return fail(what + " has no dimensions");
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0 || d >= kMaxDim)
      return fail(what + " has shape " + shapeString(shape) +
                  "; every dimension must be positive and below 2^31");
    if (n > kMaxElements / d)
      return fail(what + " has shape " + shapeString(shape) +
                  ", more than 2^40 elements");
    n *= d;
  }
  return Status::ok();
}

Status Validator::run(uint16_t major, uint16_t minor) {
  if (m.format().major() != major || m.format().minor() != minor)
    return fail("the manifest says format " + str(m.format().major()) + "." +
                str(m.format().minor()) + " but the header says " + str(major) +
                "." + str(minor));
  KVRT_RETURN_IF_ERROR(checkModel());
  KVRT_RETURN_IF_ERROR(checkTensors());
  KVRT_RETURN_IF_ERROR(checkCache());
  KVRT_RETURN_IF_ERROR(checkPlan());
  KVRT_RETURN_IF_ERROR(checkTokenizer());
  if (m.target().name().empty())
    return fail("target.name is empty; the compiler records the target it "
                "compiled for there");
  for (const auto &[statistic, blob] : m.calibration().blobs())
    if (blob >= blobSizes.size())
      return fail("calibration statistic \"" + statistic + "\" names blob " +
                  str(blob) + " but the file has " + str(blobSizes.size()) +
                  " blobs");
  return Status::ok();
}

Status Validator::checkModel() {
  const schema::ModelConfig &c = m.model();
  KVRT_RETURN_IF_ERROR(positive("model.vocab_size", c.vocab_size()));
  KVRT_RETURN_IF_ERROR(positive("model.hidden_size", c.hidden_size()));
  KVRT_RETURN_IF_ERROR(
      positive("model.intermediate_size", c.intermediate_size()));
  KVRT_RETURN_IF_ERROR(positive("model.num_layers", c.num_layers()));
  KVRT_RETURN_IF_ERROR(positive("model.num_heads", c.num_heads()));
  KVRT_RETURN_IF_ERROR(positive("model.num_kv_heads", c.num_kv_heads()));
  KVRT_RETURN_IF_ERROR(positive("model.head_dim", c.head_dim()));
  KVRT_RETURN_IF_ERROR(positive("model.max_positions", c.max_positions()));
  if (c.num_heads() % c.num_kv_heads() != 0)
    return fail("model.num_heads (" + str(c.num_heads()) +
                ") is not a multiple of model.num_kv_heads (" +
                str(c.num_kv_heads()) + ")");
  if (!(c.rms_norm_eps() > 0) || !std::isfinite(c.rms_norm_eps()))
    return fail("model.rms_norm_eps must be positive and finite");
  if (c.has_bos_token_id() &&
      (c.bos_token_id() < 0 || c.bos_token_id() >= c.vocab_size()))
    return fail("model.bos_token_id " + str(c.bos_token_id()) +
                " is outside the vocabulary of " + str(c.vocab_size()) +
                " tokens");
  for (int64_t eos : c.eos_token_ids())
    if (eos < 0 || eos >= c.vocab_size())
      return fail("model.eos_token_ids holds " + str(eos) +
                  ", outside the vocabulary of " + str(c.vocab_size()) +
                  " tokens");
  if (c.has_sliding_window())
    KVRT_RETURN_IF_ERROR(positive("model.sliding_window", c.sliding_window()));
  return checkRope("model.rope", c.rope());
}

Status Validator::checkRope(const std::string &field,
                            const schema::Rope &rope) const {
  if (!(rope.theta() > 0) || !std::isfinite(rope.theta()))
    return fail(field + ".theta must be positive and finite");
  if (rope.style() != schema::ROPE_STYLE_HALF &&
      rope.style() != schema::ROPE_STYLE_INTERLEAVED)
    return fail(field + ".style must be half or interleaved");
  const schema::RopeScaling &s = rope.scaling();
  std::string sf = field + ".scaling";
  auto finitePositive = [&](const char *name, double v) -> Status {
    if (!(v > 0) || !std::isfinite(v))
      return fail(sf + "." + name + " must be positive and finite");
    return Status::ok();
  };
  switch (s.kind()) {
  case schema::ROPE_SCALING_NONE:
    return Status::ok();
  case schema::ROPE_SCALING_LINEAR:
    return finitePositive("factor", s.factor());
  case schema::ROPE_SCALING_LLAMA3:
    KVRT_RETURN_IF_ERROR(finitePositive("factor", s.factor()));
    KVRT_RETURN_IF_ERROR(
        finitePositive("low_freq_factor", s.low_freq_factor()));
    KVRT_RETURN_IF_ERROR(
        finitePositive("high_freq_factor", s.high_freq_factor()));
    if (!(s.high_freq_factor() > s.low_freq_factor()))
      return fail(sf + ".high_freq_factor must exceed low_freq_factor");
    return positive(sf + ".original_max_position", s.original_max_position());
  case schema::ROPE_SCALING_YARN:
    KVRT_RETURN_IF_ERROR(finitePositive("factor", s.factor()));
    KVRT_RETURN_IF_ERROR(finitePositive("beta_fast", s.beta_fast()));
    KVRT_RETURN_IF_ERROR(finitePositive("beta_slow", s.beta_slow()));
    if (s.attention_factor() < 0 || !std::isfinite(s.attention_factor()))
      return fail(sf + ".attention_factor must be finite and not negative");
    return positive(sf + ".original_max_position", s.original_max_position());
  default:
    return fail(sf + ".kind " + str(s.kind()) +
                " is not a scaling this runtime knows");
  }
}

Status Validator::checkTensors() {
  for (int i = 0; i < m.tensors_size(); ++i) {
    const schema::Tensor &t = m.tensors(i);
    std::string what = "tensor " + str(i) + " (\"" + t.name() + "\")";
    if (t.name().empty())
      return fail("tensor " + str(i) + " has no name");
    if (!dtypeBlockBytes(t.dtype()))
      return fail(what + " has dtype " + str(t.dtype()) +
                  "; expected f32, f16, bf16, q8_0, q4_0 or q4_1");
    KVRT_RETURN_IF_ERROR(checkShape(what, t.shape()));
    const uint64_t block = dtypeBlockElements(t.dtype());
    if (block > 1 && (t.shape_size() != 2 || t.shape(1) % int64_t(block)))
      return fail(what + " has shape " + shapeString(t.shape()) + " of " +
                  dtypeName(t.dtype()) + "; a block format needs rows of a " +
                  "multiple of " + str(block) + " elements (rank 2)");
    if (t.has_synthetic()) {
      const schema::SyntheticValues &v = t.synthetic();
      if (t.dtype() != schema::DTYPE_BF16 && t.dtype() != schema::DTYPE_F32)
        return fail(what + " is synthetic with dtype " + dtypeName(t.dtype()) +
                    "; expected bf16 or f32");
      if (!(v.bound() >= 0) || !std::isfinite(v.bound()) ||
          !std::isfinite(v.constant()))
        return fail(what + " is synthetic with bound " +
                    std::to_string(v.bound()) + " and constant " +
                    std::to_string(v.constant()) +
                    "; both must be finite, the bound not negative");
      continue;
    }
    if (t.blob() >= blobSizes.size())
      return fail(what + " names blob " + str(t.blob()) + " but the file has " +
                  str(blobSizes.size()) + " blobs");
    uint64_t bytes = tensorBytes(t.dtype(), uint64_t(elements(t.shape())));
    if (bytes != blobSizes[t.blob()])
      return fail(what + " has shape " + shapeString(t.shape()) + " of " +
                  dtypeName(t.dtype()) + " (" + std::to_string(bytes) +
                  " bytes) but blob " + str(t.blob()) + " holds " +
                  std::to_string(blobSizes[t.blob()]) + " bytes");
  }
  return Status::ok();
}

Status Validator::checkCache() {
  if (m.cache_size() != m.model().num_layers())
    return fail("the manifest has " + str(m.cache_size()) +
                " cache layouts for " + str(m.model().num_layers()) +
                " layers");
  // Folded values' bases are the identity, which the runtime builds: they
  // may take no more memory than the weights (a real model's v_proj alone
  // is larger), so that a small file cannot ask for a huge one.
  double foldedBytes = 0, weightBytes = 0;
  for (uint64_t size : blobSizes)
    weightBytes += double(size);
  for (int i = 0; i < m.cache_size(); ++i) {
    const schema::CacheLayout &c = m.cache(i);
    std::string what = "cache[" + str(i) + "]";
    if (c.layer() != uint32_t(i))
      return fail(what + ".layer is " + str(c.layer()) + "; expected " +
                  str(i));
    KVRT_RETURN_IF_ERROR(positive(what + ".kv_heads", c.kv_heads()));
    KVRT_RETURN_IF_ERROR(positive(what + ".head_dim", c.head_dim()));
    if (c.page_size() == 0 || c.page_size() > (1u << 16))
      return fail(what + ".page_size is " + str(c.page_size()) +
                  "; it must be between 1 and 65536");
    for (const auto *e : {&c.key(), &c.value()}) {
      std::string side = what + (e == &c.key() ? ".key" : ".value");
      if (e->kind() == schema::ENCODING_UNSPECIFIED ||
          !schema::EncodingKind_IsValid(e->kind()))
        return fail(side + " has no encoding this runtime knows");
      KVRT_RETURN_IF_ERROR(checkScaleTensor(*e, c, side));
      KVRT_RETURN_IF_ERROR(checkLowRank(*e, c, side));
      if (e->folded())
        foldedBytes +=
            4.0 * double(c.kv_heads()) * c.head_dim() * (double(e->rank()) + 1);
      if (foldedBytes > weightBytes)
        return fail(side +
                    " is folded, and the identity bases of the "
                    "folded caches up to it would take more memory "
                    "than the artifact's " +
                    std::to_string(uint64_t(weightBytes)) +
                    " bytes of weights");
    }
  }
  return Status::ok();
}

Status Validator::checkLowRank(const schema::Encoding &e,
                               const schema::CacheLayout &c,
                               const std::string &side) {
  const bool keepsExact = e.kind() == schema::ENCODING_LOWRANK ||
                          e.kind() == schema::ENCODING_POLAR ||
                          e.kind() == schema::ENCODING_FP8 ||
                          e.kind() == schema::ENCODING_NVFP4;
  if (e.sinks() != 0 && !keepsExact)
    return fail(side + ".sinks is " + str(e.sinks()) +
                ", but only lowrank, polar, fp8 and nvfp4 encodings "
                "keep sink tokens");
  if (keepsExact)
    for (auto [field, tokens] :
         {std::pair{".sinks", e.sinks()}, std::pair{".residual", e.residual()}})
      if (tokens > kMaxExactTokens)
        return fail(side + field + " is " + str(tokens) +
                    "; a cache keeps at most " + str(kMaxExactTokens) +
                    " exact tokens at either end");
  if (e.kind() != schema::ENCODING_LOWRANK) {
    if (e.has_basis_tensor())
      return fail(side + ".basis_tensor is set, but only lowrank encodings "
                         "take a basis");
    if (e.folded())
      return fail(side + ".folded is set, but only lowrank encodings fold");
    return Status::ok();
  }
  const int64_t group = std::max<uint32_t>(e.group(), 1);
  if (c.kv_heads() % group)
    return fail(side + ".group is " + str(group) + "; it must divide the " +
                str(c.kv_heads()) + " KV heads");
  const int64_t size = group * int64_t(c.head_dim());
  if (e.rank() == 0 || e.rank() >= size || e.rank() % group)
    return fail(side + ".rank is " + str(e.rank()) +
                "; it must be a multiple of the group (" + str(group) +
                ") from 1 to " + str(size - 1) + " for " +
                (group > 1 ? "groups of " + str(group) + " heads of "
                           : std::string("heads of ")) +
                str(c.head_dim()));
  const schema::Encoding &latent = e.latent();
  if (latent.kind() == schema::ENCODING_UNSPECIFIED ||
      latent.kind() == schema::ENCODING_LOWRANK ||
      !schema::EncodingKind_IsValid(latent.kind()) ||
      latent.has_scale_tensor() || latent.has_basis_tensor() ||
      latent.sinks() != 0 || latent.residual() != 0)
    return fail(side + ".latent must be a plain encoding without tensors or "
                       "exact tokens of its own");
  if (e.folded()) {
    if (&e == &c.key() || group > 1 || e.has_basis_tensor())
      return fail(side + ".folded is set, but only values of one KV head a "
                         "latent fold, and they have no basis_tensor");
    return Status::ok();
  }
  if (!e.has_basis_tensor() || e.basis_tensor() >= uint32_t(m.tensors_size()))
    return fail(side +
                " is lowrank, but its basis_tensor is missing or past "
                "the manifest's " +
                str(m.tensors_size()) + " tensors");
  const schema::Tensor &t = m.tensors(int(e.basis_tensor()));
  // Each coordinate's axes, then the values' mean or the keys' weight and,
  // from format 1.1, their mean.
  const bool keyMean = &e == &c.key() && m.format().minor() >= 1;
  Shape expected;
  expected.Add(int64_t(c.kv_heads()) / group);
  expected.Add(size);
  expected.Add(int64_t(e.rank()) + (keyMean ? 2 : 1));
  if (t.dtype() != schema::DTYPE_F32 || !sameShape(t.shape(), expected))
    return fail(side + ".basis_tensor names tensor \"" + t.name() +
                "\", which must be f32 of shape " + shapeString(expected));
  return Status::ok();
}

Status Validator::checkScaleTensor(const schema::Encoding &e,
                                   const schema::CacheLayout &c,
                                   const std::string &side) {
  if (!e.has_scale_tensor())
    return Status::ok();
  // fp8 keeps a scale per KV head, nvfp4 one for the whole tensor.
  uint64_t expected;
  if (e.kind() == schema::ENCODING_FP8)
    expected = c.kv_heads();
  else if (e.kind() == schema::ENCODING_NVFP4)
    expected = 1;
  else
    return fail(side + ".scale_tensor is set, but only fp8 and nvfp4 "
                       "encodings take scales");
  if (e.scale_tensor() >= uint32_t(m.tensors_size()))
    return fail(side + ".scale_tensor is " + str(e.scale_tensor()) +
                "; the manifest has " + str(m.tensors_size()) + " tensors");
  const schema::Tensor &t = m.tensors(int(e.scale_tensor()));
  uint64_t elements = 1;
  for (int64_t d : t.shape())
    elements *= uint64_t(d);
  if (t.dtype() != schema::DTYPE_F32 || elements != expected)
    return fail(side + ".scale_tensor names tensor \"" + t.name() +
                "\", which must hold " + str(int64_t(expected)) +
                " f32 values");
  return Status::ok();
}

Status Validator::checkSelect(const std::string &what,
                              const schema::SelectParams &s,
                              const schema::CacheLayout &c) const {
  std::string field = what + " select";
  if (s.block() == 0 || (s.block() & (s.block() - 1)) != 0 ||
      c.page_size() % s.block() != 0)
    return fail(field + ".block is " + str(s.block()) +
                "; it must be a power of two that divides the layer's page "
                "size (" +
                str(c.page_size()) + ")");
  if (s.top_blocks() == 0 || s.top_tokens() == 0 ||
      uint64_t(s.top_tokens()) > uint64_t(s.top_blocks()) * s.block())
    return fail(field + " keeps " + str(s.top_tokens()) + " entries of " +
                str(s.top_blocks()) + " blocks of " + str(s.block()) +
                "; both must be positive and the entries at most top_blocks "
                "x block");
  if (c.key().kind() == schema::ENCODING_POLAR && c.key().qjl())
    return fail(field + " selects over keys with the QJL residual, which "
                        "block summaries do not bound");
  if (c.key().kind() == schema::ENCODING_LOWRANK)
    return fail(field + " selects over low-rank keys, which this runtime "
                        "does not summarise");
  return Status::ok();
}

std::string Validator::callName(int index) const {
  const std::string &name = m.plan().calls(index).name();
  return "plan call " + str(index) + (name.empty() ? "" : " (" + name + ")");
}

Status Validator::checkPlan() {
  const schema::Plan &p = m.plan();
  for (int i = 0; i < p.slots_size(); ++i)
    KVRT_RETURN_IF_ERROR(checkShape("plan slot " + str(i), p.slots(i).shape()));
  written.assign(p.slots_size(), false);
  isLogits.assign(p.slots_size(), false);
  appended.assign(m.model().num_layers(), false);
  selecting.assign(m.model().num_layers(), false);
  for (int i = 0; i < p.calls_size(); ++i) {
    const schema::KernelCall &call = p.calls(i);
    std::optional<Kernel> kernel = kernelByName(call.kernel());
    if (!kernel)
      return fail(callName(i) + " names kernel \"" + call.kernel() +
                  "\", which this runtime does not know");
    for (uint32_t slot : call.inputs()) {
      if (slot >= written.size())
        return fail(callName(i) + " reads slot " + str(slot) +
                    " but the plan has " + str(written.size()) + " slots");
      if (!written[slot])
        return fail(callName(i) + " reads slot " + str(slot) +
                    " before any call writes it");
      if (isLogits[slot])
        return fail(callName(i) + " reads the logits slot " + str(slot) +
                    ", which only the caller reads");
    }
    for (uint32_t slot : call.outputs()) {
      if (slot >= written.size())
        return fail(callName(i) + " writes slot " + str(slot) +
                    " but the plan has " + str(written.size()) + " slots");
      if (written[slot])
        return fail(callName(i) + " writes slot " + str(slot) +
                    ", which an earlier call already wrote");
    }
    for (uint32_t tensor : call.tensors())
      if (tensor >= uint32_t(m.tensors_size()))
        return fail(callName(i) + " uses tensor " + str(tensor) +
                    " but the manifest has " + str(m.tensors_size()) +
                    " tensors");
    KVRT_RETURN_IF_ERROR(checkCall(i, call, *kernel));
    for (uint32_t slot : call.outputs())
      written[slot] = true;
  }
  if (p.logits() >= written.size() || !isLogits[p.logits()])
    return fail("plan.logits (slot " + str(p.logits()) +
                ") is not the output of an lm_head call");
  return Status::ok();
}

Status Validator::checkCall(int index, const schema::KernelCall &call,
                            Kernel kernel) {
  std::string what = callName(index) + " (" + call.kernel() + ")";
  auto arity = [&](int inputs, int outputs, int minTensors,
                   int maxTensors) -> Status {
    if (call.inputs_size() != inputs || call.outputs_size() != outputs ||
        call.tensors_size() < minTensors || call.tensors_size() > maxTensors)
      return fail(what + " has " + str(call.inputs_size()) + " inputs, " +
                  str(call.outputs_size()) + " outputs and " +
                  str(call.tensors_size()) + " tensors; expected " +
                  str(inputs) + ", " + str(outputs) + " and " +
                  (minTensors == maxTensors
                       ? str(minTensors)
                       : str(minTensors) + " to " + str(maxTensors)));
    return Status::ok();
  };
  auto params = [&](schema::KernelCall::ParamsCase expected,
                    const char *name) -> Status {
    if (call.params_case() != expected)
      return fail(what + " lacks its " + name + " parameters");
    return Status::ok();
  };
  auto rank = [&](const std::string &operand, const Shape &shape,
                  int expected) -> Status {
    if (shape.size() != expected)
      return fail(what + " " + operand + " has shape " + shapeString(shape) +
                  "; expected rank " + str(expected));
    return Status::ok();
  };
  auto mismatch = [&](const std::string &detail) {
    return fail(what + ": " + detail);
  };
  auto in = [&](int i) -> const Shape & { return slotShape(call.inputs(i)); };
  auto out = [&](int i) -> const Shape & { return slotShape(call.outputs(i)); };
  auto tensor = [&](int i) -> const Shape & {
    return tensorShape(call.tensors(i));
  };
  auto sameAsInput = [&]() -> Status {
    for (int i = 0; i < call.inputs_size(); ++i)
      if (!sameShape(in(i), out(0)))
        return mismatch("input " + shapeString(in(i)) + " and output " +
                        shapeString(out(0)) + " differ in shape");
    return Status::ok();
  };
  auto layerOf = [&](uint32_t layer) -> Status {
    if (layer >= uint32_t(m.model().num_layers()))
      return mismatch("layer " + str(layer) +
                      " is out of range (the model "
                      "has " +
                      str(m.model().num_layers()) + ")");
    return Status::ok();
  };
  const int64_t vocab = m.model().vocab_size();
  // The CPU and CUDA backends read block formats (q4_1, ...) only where
  // they multiply or look up rows: the weight of these three kernels.
  const bool blocksAllowed = kernel == Kernel::Linear ||
                             kernel == Kernel::LMHead ||
                             kernel == Kernel::Embedding;
  for (int i = 0; i < call.tensors_size(); ++i) {
    const schema::Tensor &t = m.tensors(int(call.tensors(i)));
    if (dtypeBlockElements(t.dtype()) > 1 && (i > 0 || !blocksAllowed))
      return mismatch("tensor " + str(call.tensors(i)) + " (\"" + t.name() +
                      "\") is " + dtypeName(t.dtype()) +
                      "; block formats are for the weights of linear, " +
                      "lm_head and embedding calls only");
  }

  switch (kernel) {
  case Kernel::Embedding:
    KVRT_RETURN_IF_ERROR(arity(0, 1, 1, 1));
    KVRT_RETURN_IF_ERROR(rank("table", tensor(0), 2));
    if (tensor(0)[0] != vocab || out(0).size() != 1 ||
        out(0)[0] != tensor(0)[1])
      return mismatch("table " + shapeString(tensor(0)) + " and output " +
                      shapeString(out(0)) + " do not match a vocabulary of " +
                      str(vocab));
    return Status::ok();
  case Kernel::RmsNorm:
    KVRT_RETURN_IF_ERROR(arity(1, 1, 1, 1));
    KVRT_RETURN_IF_ERROR(params(schema::KernelCall::kRmsNorm, "rms_norm"));
    KVRT_RETURN_IF_ERROR(rank("weight", tensor(0), 1));
    if (in(0)[in(0).size() - 1] != tensor(0)[0])
      return mismatch("input " + shapeString(in(0)) + " and weight " +
                      shapeString(tensor(0)) + " differ in the last dimension");
    if (!(call.rms_norm().epsilon() > 0) ||
        !std::isfinite(call.rms_norm().epsilon()))
      return mismatch("epsilon must be positive and finite");
    return sameAsInput();
  case Kernel::Linear:
    KVRT_RETURN_IF_ERROR(arity(1, 1, 1, 2));
    KVRT_RETURN_IF_ERROR(rank("weight", tensor(0), 2));
    KVRT_RETURN_IF_ERROR(rank("input", in(0), 1));
    KVRT_RETURN_IF_ERROR(rank("output", out(0), 1));
    if (in(0)[0] != tensor(0)[1] || out(0)[0] != tensor(0)[0])
      return mismatch("input " + shapeString(in(0)) + ", weight " +
                      shapeString(tensor(0)) + " and output " +
                      shapeString(out(0)) + " do not match");
    if (call.tensors_size() == 2) {
      KVRT_RETURN_IF_ERROR(rank("bias", tensor(1), 1));
      if (tensor(1)[0] != tensor(0)[0])
        return mismatch("bias " + shapeString(tensor(1)) + " and weight " +
                        shapeString(tensor(0)) + " do not match");
    }
    return Status::ok();
  case Kernel::Reshape:
    KVRT_RETURN_IF_ERROR(arity(1, 1, 0, 0));
    if (elements(in(0)) != elements(out(0)))
      return mismatch("input " + shapeString(in(0)) + " and output " +
                      shapeString(out(0)) + " differ in size");
    return Status::ok();
  case Kernel::Rope:
    KVRT_RETURN_IF_ERROR(arity(1, 1, 0, 0));
    KVRT_RETURN_IF_ERROR(params(schema::KernelCall::kRope, "rope"));
    KVRT_RETURN_IF_ERROR(rank("input", in(0), 2));
    if (in(0)[1] % 2 != 0)
      return mismatch("head dimension " + str(in(0)[1]) + " is odd");
    KVRT_RETURN_IF_ERROR(checkRope(what + " rope", call.rope().rope()));
    return sameAsInput();
  case Kernel::Append: {
    KVRT_RETURN_IF_ERROR(arity(2, 0, 0, 0));
    KVRT_RETURN_IF_ERROR(params(schema::KernelCall::kAppend, "append"));
    uint32_t layer = call.append().layer();
    KVRT_RETURN_IF_ERROR(layerOf(layer));
    const schema::CacheLayout &c = m.cache(int(layer));
    for (int i = 0; i < 2; ++i)
      if (in(i).size() != 2 || in(i)[0] != c.kv_heads() ||
          in(i)[1] != c.head_dim())
        return mismatch(std::string(i ? "values " : "keys ") +
                        shapeString(in(i)) +
                        " do not match the cache of "
                        "layer " +
                        str(layer) + " (" + str(c.kv_heads()) + " heads of " +
                        str(c.head_dim()) + ")");
    if (appended[layer])
      return mismatch("layer " + str(layer) + " is appended to twice");
    appended[layer] = true;
    return Status::ok();
  }
  case Kernel::Attention: {
    KVRT_RETURN_IF_ERROR(arity(1, 1, 0, 0));
    KVRT_RETURN_IF_ERROR(params(schema::KernelCall::kAttention, "attention"));
    const schema::AttentionParams &a = call.attention();
    KVRT_RETURN_IF_ERROR(layerOf(a.layer()));
    const schema::CacheLayout &c = m.cache(int(a.layer()));
    if (in(0).size() != 2 || in(0)[1] != c.head_dim() ||
        in(0)[0] % c.kv_heads() != 0)
      return mismatch("queries " + shapeString(in(0)) +
                      " do not match the cache of layer " + str(a.layer()) +
                      " (" + str(c.kv_heads()) + " heads of " +
                      str(c.head_dim()) + ")");
    if (!appended[a.layer()])
      return mismatch("layer " + str(a.layer()) +
                      " is read before any call appends to it");
    if (!std::isfinite(a.scale()))
      return mismatch("scale is not finite");
    if (a.has_sliding_window())
      KVRT_RETURN_IF_ERROR(
          positive(what + " sliding_window", a.sliding_window()));
    if (a.has_select()) {
      KVRT_RETURN_IF_ERROR(checkSelect(what, a.select(), c));
      selecting[a.layer()] = true;
    }
    return sameAsInput();
  }
  case Kernel::Evict: {
    KVRT_RETURN_IF_ERROR(params(schema::KernelCall::kEvict, "evict"));
    const schema::EvictParams &e = call.evict();
    bool tri = e.method() == schema::EVICT_METHOD_TRIATTENTION;
    KVRT_RETURN_IF_ERROR(arity(1, 0, tri ? 2 : 0, tri ? 2 : 0));
    KVRT_RETURN_IF_ERROR(layerOf(e.layer()));
    const schema::CacheLayout &c = m.cache(int(e.layer()));
    if (in(0).size() != 2 || in(0)[1] != c.head_dim() ||
        in(0)[0] % c.kv_heads() != 0)
      return mismatch("queries " + shapeString(in(0)) +
                      " do not match the cache of layer " + str(e.layer()) +
                      " (" + str(c.kv_heads()) + " heads of " +
                      str(c.head_dim()) + ")");
    if (!appended[e.layer()])
      return mismatch("layer " + str(e.layer()) +
                      " is evicted from before any call appends to it");
    if (std::max(c.key().sinks(), c.value().sinks()) > e.sinks())
      return mismatch("layer " + str(e.layer()) + " keeps its first " +
                      str(std::max(c.key().sinks(), c.value().sinks())) +
                      " tokens exact beside a low-rank cache but its "
                      "eviction keeps " +
                      str(e.sinks()) + " sinks, so compaction would move them");
    if (!schema::EvictMethod_IsValid(e.method()))
      return mismatch("method " + str(int(e.method())) +
                      " is not one this runtime knows");
    if (!schema::EvictHeads_IsValid(e.heads()))
      return mismatch("heads " + str(int(e.heads())) +
                      " is not a selection this runtime knows (shared or "
                      "each)");
    if (!schema::EvictCombine_IsValid(e.combine()))
      return mismatch("combine " + str(int(e.combine())) +
                      " is not a combination this runtime knows (mean or "
                      "zmax)");
    if (!tri && e.combine() != schema::EVICT_COMBINE_MEAN)
      return mismatch("combine is zmax, which only triattention takes");
    switch (e.budget_case()) {
    case schema::EvictParams::kBudgetTokens:
      if (e.budget_tokens() == 0)
        return mismatch("budget_tokens is 0; it must be at least 1");
      break;
    case schema::EvictParams::kBudgetFraction:
      if (!(e.budget_fraction() > 0 && e.budget_fraction() <= 1))
        return mismatch("budget_fraction is " +
                        std::to_string(e.budget_fraction()) +
                        "; it must be in (0, 1]");
      break;
    default:
      return mismatch("has no budget");
    }
    if (e.interval() == 0)
      return mismatch("interval is 0; it must be at least 1");
    if (e.method() == schema::EVICT_METHOD_SNAPKV &&
        (e.observe() == 0 || e.kernel() % 2 == 0))
      return mismatch("snapkv needs observe >= 1 and an odd kernel (it has " +
                      str(e.observe()) + " and " + str(e.kernel()) + ")");
    if (tri && (e.horizon() & (e.horizon() - 1)) != 0)
      return mismatch("horizon is " + str(e.horizon()) +
                      "; it must be a power of two (the last of the future "
                      "distances 1, 2, 4, ...)");
    if (tri) {
      int64_t heads = in(0)[0], half = c.head_dim() / 2;
      if (!shapeIs(tensor(0), {heads, half, 2}) ||
          !shapeIs(tensor(1), {heads, half}))
        return mismatch("query_center " + shapeString(tensor(0)) +
                        " and query_magnitude " + shapeString(tensor(1)) +
                        " do not match " + str(heads) + " query heads of " +
                        str(c.head_dim()) + " ([H, d/2, 2] and [H, d/2])");
      for (int i = 0; i < 2; ++i)
        if (m.tensors(int(call.tensors(i))).dtype() != schema::DTYPE_F32)
          return mismatch(std::string(i ? "query_magnitude" : "query_center") +
                          " is not f32");
    }
    return Status::ok();
  }
  case Kernel::Prefetch: {
    KVRT_RETURN_IF_ERROR(arity(0, 0, 0, 0));
    KVRT_RETURN_IF_ERROR(params(schema::KernelCall::kPrefetch, "prefetch"));
    const schema::PrefetchParams &p = call.prefetch();
    KVRT_RETURN_IF_ERROR(layerOf(p.layer()));
    if (!selecting[p.layer()])
      return mismatch("layer " + str(p.layer()) +
                      " is prefetched for before an attention call of the "
                      "layer selects; offload predicts pages from the "
                      "selection");
    if (!schema::PrefetchMode_IsValid(p.mode()))
      return mismatch("mode " + str(int(p.mode())) +
                      " is not one this runtime knows");
    switch (p.device_case()) {
    case schema::PrefetchParams::kDevicePages:
      if (p.device_pages() == 0 || p.device_pages() > (uint64_t(1) << 32))
        return mismatch("device_pages is " + std::to_string(p.device_pages()) +
                        "; it must be between 1 and 2^32");
      break;
    case schema::PrefetchParams::kDeviceRatio:
      if (!(p.device_ratio() > 0 && p.device_ratio() <= 1))
        return mismatch("device_ratio is " + std::to_string(p.device_ratio()) +
                        "; it must be in (0, 1]");
      break;
    default:
      return mismatch("has no device budget (device_pages or device_ratio)");
    }
    if (p.runners_up() > (1u << 16))
      return mismatch("runners_up is " + str(p.runners_up()) +
                      "; it must be at most 65536");
    return Status::ok();
  }
  case Kernel::SwiGLU:
  case Kernel::Add:
    KVRT_RETURN_IF_ERROR(arity(2, 1, 0, 0));
    return sameAsInput();
  case Kernel::LMHead:
    KVRT_RETURN_IF_ERROR(arity(1, 1, 1, 1));
    KVRT_RETURN_IF_ERROR(rank("weight", tensor(0), 2));
    if (in(0).size() != 1 || in(0)[0] != tensor(0)[1] || out(0).size() != 1 ||
        out(0)[0] != tensor(0)[0] || tensor(0)[0] != vocab)
      return mismatch("input " + shapeString(in(0)) + ", weight " +
                      shapeString(tensor(0)) + " and output " +
                      shapeString(out(0)) + " do not match a vocabulary of " +
                      str(vocab));
    if (call.outputs(0) != m.plan().logits())
      return mismatch("its output is not plan.logits");
    isLogits[call.outputs(0)] = true;
    return Status::ok();
  }
  return Status::ok();
}

Status Validator::checkTokenizer() {
  if (!m.tokenizer().has_gguf())
    return Status::ok();
  const schema::GgufVocabulary &g = m.tokenizer().gguf();
  int64_t n = g.tokens_size();
  if (g.scores_size() != 0 && g.scores_size() != n)
    return fail("tokenizer.gguf has " + str(g.scores_size()) + " scores for " +
                str(n) + " tokens");
  if (g.token_types_size() != 0 && g.token_types_size() != n)
    return fail("tokenizer.gguf has " + str(g.token_types_size()) +
                " token types for " + str(n) + " tokens");
  struct Id {
    const char *field;
    bool present;
    int32_t value;
  };
  for (const Id &id : {Id{"bos_id", g.has_bos_id(), g.bos_id()},
                       Id{"eos_id", g.has_eos_id(), g.eos_id()},
                       Id{"unk_id", g.has_unk_id(), g.unk_id()},
                       Id{"pad_id", g.has_pad_id(), g.pad_id()}})
    if (id.present && (id.value < 0 || id.value >= n))
      return fail(std::string("tokenizer.gguf.") + id.field + " " +
                  str(id.value) + " is outside its " + str(n) + " tokens");
  return Status::ok();
}

} // namespace

Status validateManifest(const schema::Manifest &manifest,
                        const std::vector<uint64_t> &blobSizes,
                        const std::string &fileName, uint16_t major,
                        uint16_t minor) {
  return Validator(manifest, blobSizes, fileName).run(major, minor);
}

} // namespace kvrt
