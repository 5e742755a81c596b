//===- OnnxDecoder.cpp - A Llama-family decoder in an ONNX graph ----------===//
//
// The recogniser walks the residual stream from the token embedding: per
// layer an RMSNorm, an attention block (found by its Attention or Softmax
// node, whose query, key and value inputs are traced back through reshapes,
// RoPE and the KV-cache concat to the projections by weight initializers),
// the o_proj and residual Add, then the same for the SwiGLU MLP; at the end
// the final norm and the lm_head. Nothing on these paths is skipped
// silently: an op the patterns do not expect ends the walk with a message.
//
//===----------------------------------------------------------------------===//
#include "compiler/import/onnx/OnnxDecoder.h"
#include "compiler/import/formats/Quote.h"
#include "compiler/import/formats/TensorInfo.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <set>

using kvrt::Status;
using kvrt::StatusOr;

namespace kvopt::import {

namespace {

using formats::OnnxModel;
using formats::OnnxTensor;
using formats::quote;

/// The ops of the two recognised forms; diagnostics name the others.
const std::set<std::string> kKnownOps = {"Add",
                                         "Attention",
                                         "Cast",
                                         "Concat",
                                         "Constant",
                                         "ConstantOfShape",
                                         "Div",
                                         "Equal",
                                         "Expand",
                                         "Gather",
                                         "Greater",
                                         "Identity",
                                         "Less",
                                         "MatMul",
                                         "Mul",
                                         "Neg",
                                         "Pow",
                                         "Range",
                                         "Reciprocal",
                                         "ReduceMean",
                                         "Reshape",
                                         "RMSNormalization",
                                         "RotaryEmbedding",
                                         "Shape",
                                         "Sigmoid",
                                         "Slice",
                                         "Softmax",
                                         "Sqrt",
                                         "Squeeze",
                                         "Sub",
                                         "Transpose",
                                         "Trilu",
                                         "Unsqueeze",
                                         "Where"};

/// Ops that only move elements around on the way to or from a projection.
const std::set<std::string> kLayoutOps = {"Reshape", "Transpose", "Unsqueeze",
                                          "Squeeze", "Expand",    "Identity"};

/// A MatMul by a weight: `x @ W` with W an initializer stored [in, out], or
/// `x @ Transpose(W)` with W stored [out, in] as Hugging Face has it.
struct Projection {
  int node = -1;
  OnnxWeightRef ref;
  /// [out, in].
  std::vector<int64_t> shape;
};

/// The cos and sin values a rotation multiplies by.
struct Rope {
  std::string cos, sin;
  bool interleaved = false;
  /// RotaryEmbedding caches hold head_dim / 2 columns, rotate_half ones
  /// head_dim.
  bool halfWidth = false;
};

/// What lies between an attention input and its projection.
struct Trace {
  Projection proj;
  std::optional<Rope> rope;
  double scale = 1.0;
};

struct Norm {
  std::string out, gamma;
  double eps = 0;
  /// The nodes that read the normalised value itself.
  std::vector<int> entries;
};

/// The layer's output and the residual Add that produced it.
struct Block {
  std::string out;
  int residual = -1;
};

class Recogniser {
public:
  explicit Recogniser(const OnnxModel &m) : m(m) {}
  StatusOr<OnnxDecoder> run();

private:
  const onnx::NodeProto &node(int i) const { return m.node(i); }
  std::string in(int i, int k) const {
    return k < node(i).input_size() ? node(i).input(k) : std::string();
  }
  std::string out(int i) const {
    return node(i).output_size() ? node(i).output(0) : std::string();
  }
  /// The readers of `v` that compute with it (not Shape or Size).
  std::vector<int> readers(const std::string &v) const;
  /// The single reader of `v` when it is an `op` node, else -1.
  int onlyReader(const std::string &v, const std::string &op) const;
  /// The other input of the binary node `i`, or "" when `v` is neither.
  std::string other(int i, const std::string &v) const;
  std::optional<double> scalar(const std::string &v) const;
  const onnx::AttributeProto *attr(int i, const std::string &name) const;
  int64_t intAttr(int i, const std::string &name, int64_t fallback) const;
  std::optional<Projection> projection(int i) const;

  Status fail(const std::string &block, const std::string &detail,
              const std::string &from) const;
  Status checkWeightDims() const;
  StatusOr<std::string> embedding();
  StatusOr<Norm> norm(const std::string &h, const std::string &block);
  StatusOr<Trace> trace(std::string v, bool allowRope, const std::string &what,
                        const std::string &from);
  std::optional<Rope> rotateHalf(int add, std::string &x) const;
  StatusOr<const OnnxTensor *> cache(std::string v, const std::string &from);
  Status ropeConfig(const Rope &rope, const std::string &from);
  StatusOr<Block> attention(const std::string &h, const std::string &n);
  StatusOr<Block> mlp(const std::string &h, const std::string &n);
  Status checkResidualReaders(const std::string &h, const Norm &norm,
                              int residual);
  Status setEps(double eps, const std::string &from);

  const OnnxModel &m;
  std::set<std::string> data;
  std::string layer;
  std::string prefix;
  OnnxDecoder result;
  ModelConfig &cfg = result.config;
  bool haveEps = false, haveRope = false;
};

std::vector<int> Recogniser::readers(const std::string &v) const {
  std::vector<int> r;
  for (int c : m.consumers(v))
    if (m.opName(c) != "Shape" && m.opName(c) != "Size")
      r.push_back(c);
  return r;
}

int Recogniser::onlyReader(const std::string &v, const std::string &op) const {
  std::vector<int> r = readers(v);
  return r.size() == 1 && m.opName(r[0]) == op ? r[0] : -1;
}

std::string Recogniser::other(int i, const std::string &v) const {
  if (node(i).input_size() != 2)
    return "";
  if (in(i, 0) == v)
    return in(i, 1);
  return in(i, 1) == v ? in(i, 0) : "";
}

std::optional<double> Recogniser::scalar(const std::string &v) const {
  const OnnxTensor *t = m.constant(v);
  if (!t || !t->data || t->numElements() != 1)
    return std::nullopt;
  switch (t->dataType) {
  case onnx::TensorProto::FLOAT: {
    float f;
    std::memcpy(&f, t->data, 4);
    return formats::widenFloat32(f);
  }
  case onnx::TensorProto::DOUBLE: {
    double d;
    std::memcpy(&d, t->data, 8);
    return d;
  }
  case onnx::TensorProto::INT64: {
    int64_t i;
    std::memcpy(&i, t->data, 8);
    return double(i);
  }
  case onnx::TensorProto::INT32: {
    int32_t i;
    std::memcpy(&i, t->data, 4);
    return double(i);
  }
  default:
    return std::nullopt;
  }
}

const onnx::AttributeProto *Recogniser::attr(int i,
                                             const std::string &name) const {
  for (const onnx::AttributeProto &a : node(i).attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t Recogniser::intAttr(int i, const std::string &name,
                            int64_t fallback) const {
  const onnx::AttributeProto *a = attr(i, name);
  return a ? a->i() : fallback;
}

std::optional<Projection> Recogniser::projection(int i) const {
  if (i < 0 || m.opName(i) != "MatMul" || node(i).input_size() != 2)
    return std::nullopt;
  Projection p;
  p.node = i;
  std::string w = in(i, 1);
  p.ref.transposed = true;
  if (int t = m.producer(w); t >= 0 && m.opName(t) == "Transpose") {
    const onnx::AttributeProto *perm = attr(t, "perm");
    if (perm && (perm->ints_size() != 2 || perm->ints(0) != 1))
      return std::nullopt;
    w = in(t, 0);
    p.ref.transposed = false;
  }
  const OnnxTensor *tensor = m.isInitializer(w) ? m.constant(w) : nullptr;
  if (!tensor || tensor->shape.size() != 2)
    return std::nullopt;
  p.ref.initializer = w;
  p.shape = tensor->shape;
  if (p.ref.transposed)
    std::swap(p.shape[0], p.shape[1]);
  return p;
}

Status Recogniser::fail(const std::string &block, const std::string &detail,
                        const std::string &from) const {
  // Name the unknown ops near where the walk stopped, in graph order.
  std::set<int> seen, unknown;
  std::deque<std::string> queue = {from};
  while (!queue.empty() && seen.size() < 256) {
    std::string v = queue.front();
    queue.pop_front();
    for (int c : readers(v)) {
      if (!seen.insert(c).second)
        continue;
      if (!kKnownOps.count(m.opName(c)))
        unknown.insert(c);
      for (const std::string &o : node(c).output())
        queue.push_back(o);
    }
  }
  std::string message =
      m.name() + ": " + prefix + "cannot recognise the " + block + ": ";
  if (unknown.empty())
    return Status::error(message + detail);
  message += "unsupported ops";
  const char *sep = " ";
  for (int c : unknown) {
    std::string op = quote(m.opName(c));
    std::string name = node(c).name().empty() ? "#" + std::to_string(c)
                                              : quote(node(c).name());
    message += sep + op.substr(1, op.size() - 2) + " (node " + name + ")";
    sep = ", ";
  }
  return Status::error(message);
}

Status Recogniser::checkWeightDims() const {
  for (const onnx::TensorProto &t : m.graph().initializer()) {
    const OnnxTensor *tensor = m.constant(t.name());
    bool isFloat = tensor->dataType == onnx::TensorProto::FLOAT ||
                   tensor->dataType == onnx::TensorProto::FLOAT16 ||
                   tensor->dataType == onnx::TensorProto::BFLOAT16;
    if (!isFloat || tensor->shape.empty() || tensor->numElements() != 0)
      continue;
    return Status::error(m.name() + ": initializer " + quote(t.name()) +
                         " has dims " + formats::shapeString(tensor->shape) +
                         "; a weight needs every dimension to be at least 1");
  }
  return Status::ok();
}

StatusOr<std::string> Recogniser::embedding() {
  for (int i : m.order()) {
    if (m.opName(i) != "Gather" || intAttr(i, "axis", 0) != 0)
      continue;
    const OnnxTensor *table =
        m.isInitializer(in(i, 0)) ? m.constant(in(i, 0)) : nullptr;
    if (!table || table->shape.size() != 2 ||
        (table->dataType != onnx::TensorProto::FLOAT &&
         table->dataType != onnx::TensorProto::FLOAT16 &&
         table->dataType != onnx::TensorProto::BFLOAT16))
      continue;
    std::string ids = in(i, 1);
    for (int steps = 0; steps < 8 && !m.isGraphInput(ids); ++steps) {
      int p = m.producer(ids);
      if (p < 0 || (m.opName(p) != "Cast" && !kLayoutOps.count(m.opName(p))))
        break;
      ids = in(p, 0);
    }
    if (!m.isGraphInput(ids))
      continue;
    cfg.vocabSize = table->shape[0];
    cfg.hiddenSize = table->shape[1];
    result.weights["model.embed_tokens.weight"] = {in(i, 0), false};
    return out(i);
  }
  return Status::error(m.name() + ": cannot recognise the token embedding: "
                                  "no Gather reads a 2-D initializer at the "
                                  "token ids of a graph input");
}

Status Recogniser::setEps(double eps, const std::string &from) {
  if (!haveEps) {
    cfg.rmsNormEps = eps;
    haveEps = true;
  } else if (eps != cfg.rmsNormEps) {
    return fail("RMSNorm",
                "its epsilon " + std::to_string(eps) +
                    " differs from the first norm's",
                from);
  }
  return Status::ok();
}

StatusOr<Norm> Recogniser::norm(const std::string &h,
                                const std::string &block) {
  Norm n;
  auto gammaOf = [&](const std::string &g) {
    const OnnxTensor *t = m.isInitializer(g) ? m.constant(g) : nullptr;
    return t && t->shape == std::vector<int64_t>{cfg.hiddenSize};
  };
  for (int c : readers(h)) {
    if (m.opName(c) != "RMSNormalization" || in(c, 0) != h)
      continue;
    int64_t axis = intAttr(c, "axis", -1);
    const onnx::AttributeProto *eps = attr(c, "epsilon");
    if ((axis != -1 && axis != 2) || !gammaOf(in(c, 1)))
      return fail(block,
                  "node " + m.describe(c) +
                      " must normalise the last axis with a weight "
                      "initializer of the hidden size",
                  h);
    n.out = out(c);
    n.gamma = in(c, 1);
    n.eps = eps ? formats::widenFloat32(eps->f()) : 1e-5;
    n.entries = {c};
    KVRT_RETURN_IF_ERROR(setEps(n.eps, h));
    return n;
  }
  // Decomposed: x / sqrt(mean(x^2) + eps) * gamma, or x * (1 / sqrt(...)).
  int square = -1;
  for (int c : readers(h))
    if ((m.opName(c) == "Pow" && in(c, 0) == h && scalar(in(c, 1)) == 2.0) ||
        (m.opName(c) == "Mul" && in(c, 0) == h && in(c, 1) == h))
      square = c;
  std::string expected = "no RMSNormalization, or Pow(x, 2), ReduceMean, "
                         "Add(eps), Sqrt, Div (or Reciprocal and Mul) and "
                         "Mul(weight), reads the residual stream";
  if (square < 0)
    return fail(block, expected, h);
  int mean = onlyReader(out(square), "ReduceMean");
  auto lastAxis = [&](int reduce) {
    if (const onnx::AttributeProto *axes = attr(reduce, "axes"))
      return axes->ints_size() == 1 &&
             (axes->ints(0) == -1 || axes->ints(0) == 2);
    std::optional<double> axis = scalar(in(reduce, 1));
    return axis && (*axis == -1 || *axis == 2);
  };
  int add = mean < 0 ? -1 : onlyReader(out(mean), "Add");
  std::optional<double> eps =
      add < 0 ? std::nullopt : scalar(other(add, out(mean)));
  int sqrt = add < 0 ? -1 : onlyReader(out(add), "Sqrt");
  if (!eps || sqrt < 0 || intAttr(mean, "keepdims", 1) != 1 || !lastAxis(mean))
    return fail(block, expected, h);
  std::string root = out(sqrt), normalised;
  int first = -1;
  if (int div = onlyReader(root, "Div"); div >= 0 && in(div, 0) == h) {
    normalised = out(div);
    first = div;
  } else {
    int inv = onlyReader(root, "Reciprocal");
    if (int d = onlyReader(root, "Div"); d >= 0 && scalar(in(d, 0)) == 1.0)
      inv = d;
    int mul = inv < 0 ? -1 : onlyReader(out(inv), "Mul");
    if (mul < 0 || other(mul, out(inv)) != h)
      return fail(block, expected, h);
    normalised = out(mul);
    first = mul;
  }
  int scale = onlyReader(normalised, "Mul");
  if (scale < 0 || !gammaOf(other(scale, normalised)))
    return fail(block, expected, h);
  n.out = out(scale);
  n.gamma = other(scale, normalised);
  n.eps = *eps;
  n.entries = {square, first};
  KVRT_RETURN_IF_ERROR(setEps(n.eps, h));
  return n;
}

std::optional<Rope> Recogniser::rotateHalf(int add, std::string &x) const {
  // x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1].
  if (node(add).input_size() != 2)
    return std::nullopt;
  int a = m.producer(in(add, 0)), b = m.producer(in(add, 1));
  if (a < 0 || b < 0 || m.opName(a) != "Mul" || m.opName(b) != "Mul")
    return std::nullopt;
  auto split = [&](int mul, std::string &d, std::string &c) {
    d = data.count(in(mul, 0)) ? in(mul, 0) : in(mul, 1);
    c = other(mul, d);
    return !c.empty() && !data.count(c);
  };
  std::string da, ca, db, cb;
  if (!split(a, da, ca) || !split(b, db, cb))
    return std::nullopt;
  for (int swap = 0; swap < 2; ++swap, std::swap(da, db), std::swap(ca, cb)) {
    int cat = m.producer(db);
    if (cat < 0 || m.opName(cat) != "Concat" || node(cat).input_size() != 2)
      continue;
    int neg = m.producer(in(cat, 0)), low = m.producer(in(cat, 1));
    if (neg < 0 || low < 0 || m.opName(neg) != "Neg" ||
        m.opName(low) != "Slice" || in(low, 0) != da)
      continue;
    int high = m.producer(in(neg, 0));
    if (high < 0 || m.opName(high) != "Slice" || in(high, 0) != da)
      continue;
    x = da;
    return Rope{ca, cb, false, false};
  }
  return std::nullopt;
}

StatusOr<Trace> Recogniser::trace(std::string v, bool allowRope,
                                  const std::string &what,
                                  const std::string &from) {
  Trace t;
  for (int steps = 0; steps < 64; ++steps) {
    int p = m.producer(v);
    if (p < 0)
      break;
    std::string op = m.opName(p);
    if (op == "MatMul") {
      std::optional<Projection> proj = projection(p);
      if (!proj)
        return fail("attention block",
                    "the " + what + " comes from node " + m.describe(p) +
                        ", which is not a MatMul by a 2-D weight initializer",
                    from);
      t.proj = *proj;
      return t;
    }
    if (kLayoutOps.count(op) ||
        (op == "Cast" && intAttr(p, "to", 0) == onnx::TensorProto::FLOAT)) {
      v = in(p, 0);
      continue;
    }
    if (op == "Concat") {
      // The KV cache: the past (a graph input) joined with the new rows.
      std::string fresh;
      int freshCount = 0, pastCount = 0;
      for (const std::string &i : node(p).input()) {
        if (data.count(i)) {
          fresh = i;
          ++freshCount;
        } else if (m.isGraphInput(i)) {
          ++pastCount;
        }
      }
      if (freshCount == 1 && freshCount + pastCount == node(p).input_size()) {
        v = fresh;
        continue;
      }
    }
    if (allowRope && !t.rope && op == "RotaryEmbedding" &&
        intAttr(p, "rotary_embedding_dim", 0) == 0) {
      t.rope =
          Rope{in(p, 1), in(p, 2), intAttr(p, "interleaved", 0) != 0, true};
      v = in(p, 0);
      continue;
    }
    if (allowRope && !t.rope && op == "Add") {
      std::string x;
      if ((t.rope = rotateHalf(p, x))) {
        v = x;
        continue;
      }
    }
    if (op == "Mul" || op == "Div") {
      std::optional<double> s = scalar(in(p, 1));
      if (op == "Mul" && !s && (s = scalar(in(p, 0))))
        v = in(p, 1);
      else
        v = in(p, 0);
      if (s && *s != 0) {
        t.scale *= op == "Mul" ? *s : 1.0 / *s;
        continue;
      }
    }
    return fail("attention block",
                "the " + what + " passes node " + m.describe(p) +
                    ", which is neither a reshape, " +
                    (allowRope ? "a rotary embedding, " : "") +
                    "a KV-cache concat nor a scaling",
                from);
  }
  return fail("attention block",
              "the " + what + " does not come from a MatMul by a weight", from);
}

StatusOr<const OnnxTensor *> Recogniser::cache(std::string v,
                                               const std::string &from) {
  for (int steps = 0; steps < 16; ++steps) {
    if (m.isInitializer(v)) {
      const OnnxTensor *t = m.constant(v);
      if (t->dataType == onnx::TensorProto::FLOAT && t->shape.size() == 2)
        return t;
      break;
    }
    int p = m.producer(v);
    if (p < 0)
      break;
    std::string op = m.opName(p);
    if (!kLayoutOps.count(op) && op != "Gather" && op != "Cast")
      return fail("rotary embedding",
                  "its cos/sin come from node " + m.describe(p) +
                      ", not from a [positions, dims] FLOAT cache initializer",
                  from);
    v = in(p, 0);
  }
  return fail("rotary embedding",
              "its cos/sin do not come from a [positions, dims] FLOAT cache "
              "initializer",
              from);
}

Status Recogniser::ropeConfig(const Rope &rope, const std::string &from) {
  StatusOr<const OnnxTensor *> cosOr = cache(rope.cos, from);
  if (!cosOr)
    return cosOr.status();
  StatusOr<const OnnxTensor *> sinOr = cache(rope.sin, from);
  if (!sinOr)
    return sinOr.status();
  const OnnxTensor &c = **cosOr, &s = **sinOr;
  int64_t rows = c.shape[0], width = c.shape[1];
  int64_t half = rope.halfWidth ? width : width / 2;
  if (s.shape != c.shape || rows < 2 || half < 2 ||
      (!rope.halfWidth && width % 2 != 0))
    return fail("rotary embedding",
                "the cos/sin caches " + formats::shapeString(c.shape) +
                    " and " + formats::shapeString(s.shape) +
                    " are not two [positions, dims] tables of one shape",
                from);
  auto at = [&](const OnnxTensor &t, int64_t p, int64_t j) {
    float f;
    std::memcpy(&f, t.data + (p * width + j) * 4, 4);
    return double(f);
  };
  // theta from the slowest frequency, where p * freq stays below pi.
  int64_t dim = 2 * half, j = half - 1;
  double freq = std::atan2(at(s, 1, j), at(c, 1, j));
  double reach = freq > 0 ? 3.0 / freq : 1.0;
  int64_t p = reach >= double(rows - 1) ? rows - 1
                                        : std::max<int64_t>(1, int64_t(reach));
  freq = std::atan2(at(s, p, j), at(c, p, j)) / double(p);
  double theta = freq > 0 ? std::pow(freq, -double(dim) / double(2 * j)) : 0;
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", theta);
  theta = std::strtod(text, nullptr); // Configs give theta in few digits.
  std::vector<double> freqs(half);
  for (int64_t k = 0; k < half; ++k)
    freqs[k] = std::pow(theta, -2.0 * double(k) / double(dim));
  for (int64_t q = 0; q < rows; ++q)
    for (int64_t k = 0; k < width; ++k) {
      double angle = double(q) * freqs[k % half];
      double tolerance = 1e-3 + double(q) * 2.5e-7;
      if (!(std::fabs(at(c, q, k) - std::cos(angle)) <= tolerance &&
            std::fabs(at(s, q, k) - std::sin(angle)) <= tolerance))
        return fail("rotary embedding",
                    "the cos/sin caches are not plain RoPE with theta " +
                        std::string(text) + " at position " +
                        std::to_string(q) + " (scaled RoPE is not supported)",
                    from);
    }
  RopeLayout layout =
      rope.interleaved ? RopeLayout::Interleaved : RopeLayout::Half;
  if (haveRope && (cfg.headDim != dim || cfg.ropeTheta != theta ||
                   cfg.maxPositions != rows || cfg.ropeLayout != layout))
    return fail("rotary embedding", "it differs from the first layer's", from);
  cfg.headDim = dim;
  cfg.ropeTheta = theta;
  cfg.maxPositions = rows;
  cfg.ropeLayout = layout;
  haveRope = true;
  return Status::ok();
}

StatusOr<Block> Recogniser::attention(const std::string &h,
                                      const std::string &n) {
  const std::string block = "attention block";
  // The core: the first Attention or Softmax after the normalised input.
  int core = -1;
  std::set<int> seen;
  std::deque<std::string> queue = {n};
  while (!queue.empty() && core < 0 && seen.size() < 256) {
    std::string v = queue.front();
    queue.pop_front();
    for (int c : readers(v)) {
      if (m.opName(c) == "Attention" || m.opName(c) == "Softmax") {
        core = c;
        break;
      }
      if (seen.insert(c).second)
        for (const std::string &o : node(c).output())
          queue.push_back(o);
    }
  }
  if (core < 0)
    return fail(block, "no Attention or Softmax node follows the norm", n);
  std::string q, k, v, merged;
  double coreScale = 0;
  if (m.opName(core) == "Attention") {
    const onnx::AttributeProto *softcap = attr(core, "softcap");
    bool masked = intAttr(core, "is_causal", 0) == 1 || !in(core, 3).empty();
    if (node(core).input_size() < 3 || (softcap && softcap->f() != 0) ||
        intAttr(core, "qk_matmul_output_mode", 0) != 0 || !masked)
      return fail(block,
                  "node " + m.describe(core) +
                      " must be causal (or masked) attention of query, key "
                      "and value without softcap",
                  n);
    for (int i = 3; i < node(core).input_size(); ++i)
      if (!in(core, i).empty() && data.count(in(core, i)))
        return fail(block,
                    "input " + std::to_string(i) + " of node " +
                        m.describe(core) + " depends on the hidden state",
                    n);
    q = in(core, 0);
    k = in(core, 1);
    v = in(core, 2);
    merged = out(core);
    if (const onnx::AttributeProto *s = attr(core, "scale"))
      coreScale = formats::widenFloat32(s->f());
  } else {
    // scores = q @ k^T, scaled, masked; softmax; @ v.
    std::string s = in(core, 0);
    coreScale = 1;
    int p = m.producer(s);
    for (int steps = 0; steps < 2 && p >= 0; ++steps, p = m.producer(s)) {
      std::string op = m.opName(p);
      std::optional<double> factor = scalar(in(p, 1));
      if (op == "Add" && !data.count(in(p, 1)))
        s = in(p, 0); // The mask.
      else if (op == "Add" && !data.count(in(p, 0)))
        s = in(p, 1);
      else if ((op == "Mul" || op == "Div") && factor && *factor != 0) {
        coreScale *= op == "Mul" ? *factor : 1.0 / *factor;
        s = in(p, 0);
      } else
        break;
    }
    int pv = onlyReader(out(core), "MatMul");
    int64_t axis = intAttr(core, "axis", -1);
    if (p < 0 || m.opName(p) != "MatMul" || pv < 0 || in(pv, 0) != out(core) ||
        (axis != -1 && axis != 3))
      return fail(block,
                  "node " + m.describe(core) +
                      " is not softmax(q @ k^T * scale + mask) @ v over the "
                      "last axis",
                  n);
    q = in(p, 0);
    k = in(p, 1);
    v = in(pv, 1);
    merged = out(pv);
  }
  StatusOr<Trace> qt = trace(q, true, "query", n);
  if (!qt)
    return qt.status();
  StatusOr<Trace> kt = trace(k, true, "key", n);
  if (!kt)
    return kt.status();
  StatusOr<Trace> vt = trace(v, false, "value", n);
  if (!vt)
    return vt.status();
  for (auto [t, what] :
       {std::pair{&*qt, "query"}, {&*kt, "key"}, {&*vt, "value"}})
    if (in(t->proj.node, 0) != n)
      return fail(block,
                  std::string("the ") + what + " projection " +
                      m.describe(t->proj.node) + " does not read the norm",
                  n);
  if (!qt->rope || !kt->rope || qt->rope->cos != kt->rope->cos ||
      qt->rope->sin != kt->rope->sin)
    return fail(block, "the queries and keys are not rotated by the same RoPE",
                n);
  KVRT_RETURN_IF_ERROR(ropeConfig(*qt->rope, n));
  int64_t d = cfg.headDim, qOut = qt->proj.shape[0], kvOut = kt->proj.shape[0];
  if (qOut % d != 0 || kvOut % d != 0 || vt->proj.shape[0] != kvOut ||
      (qOut / d) % (kvOut / d) != 0 || qt->proj.shape[1] != cfg.hiddenSize)
    return fail(block,
                "projections " + formats::shapeString(qt->proj.shape) + ", " +
                    formats::shapeString(kt->proj.shape) + " and " +
                    formats::shapeString(vt->proj.shape) +
                    " do not split into heads of " + std::to_string(d),
                n);
  int64_t heads = qOut / d, kvHeads = kvOut / d;
  if (m.opName(core) == "Attention" &&
      (intAttr(core, "q_num_heads", heads) != heads ||
       intAttr(core, "kv_num_heads", kvHeads) != kvHeads))
    return fail(block,
                "node " + m.describe(core) +
                    " has head counts other than its projections'",
                n);
  if (cfg.numLayers == 0) {
    cfg.numHeads = heads;
    cfg.numKvHeads = kvHeads;
  } else if (cfg.numHeads != heads || cfg.numKvHeads != kvHeads) {
    return fail(block, "its head counts differ from layer 0's", n);
  }
  double expected = 1.0 / std::sqrt(double(d));
  double scale =
      (coreScale == 0 ? expected : coreScale) * qt->scale * kt->scale;
  if (std::fabs(scale - expected) > 1e-4 * expected)
    return fail(block,
                "its scale " + std::to_string(scale) +
                    " is not 1/sqrt(head_dim) = " + std::to_string(expected),
                n);

  // o_proj, after the heads are merged back, then the residual Add.
  std::vector<int> r = readers(merged);
  while (r.size() == 1 &&
         (m.opName(r[0]) == "Transpose" || m.opName(r[0]) == "Reshape")) {
    merged = out(r[0]);
    r = readers(merged);
  }
  std::optional<Projection> o = r.size() == 1 ? projection(r[0]) : std::nullopt;
  int add = o ? onlyReader(out(o->node), "Add") : -1;
  if (!o || in(o->node, 0) != merged || add < 0 ||
      other(add, out(o->node)) != h)
    return fail(block,
                "the attention output does not reach a MatMul by a weight "
                "(o_proj) added to the residual stream",
                n);
  if (readers(n).size() != 3)
    return fail(block, "the norm's output has readers besides q, k and v", n);
  std::string p = "model.layers." + layer + ".self_attn.";
  result.weights[p + "q_proj.weight"] = qt->proj.ref;
  result.weights[p + "k_proj.weight"] = kt->proj.ref;
  result.weights[p + "v_proj.weight"] = vt->proj.ref;
  result.weights[p + "o_proj.weight"] = o->ref;
  return Block{out(add), add};
}

StatusOr<Block> Recogniser::mlp(const std::string &h, const std::string &n) {
  const std::string block = "MLP";
  std::vector<int> r = readers(n);
  std::optional<Projection> a, b;
  if (r.size() == 2) {
    a = projection(r[0]);
    b = projection(r[1]);
  }
  if (!a || !b || in(a->node, 0) != n || in(b->node, 0) != n)
    return fail(block,
                "the norm's output is not read by exactly two MatMuls "
                "by weights (gate and up)",
                n);
  // SiLU(gate) = gate * Sigmoid(gate).
  int silu = -1;
  for (int swap = 0; swap < 2 && silu < 0; ++swap, std::swap(a, b)) {
    std::string g = out(a->node);
    for (int sig : readers(g))
      if (m.opName(sig) == "Sigmoid")
        for (int mul : readers(out(sig)))
          if (m.opName(mul) == "Mul" && other(mul, out(sig)) == g)
            silu = mul;
  }
  if (silu < 0)
    return fail(block, "no gate projection feeds x * Sigmoid(x) (SiLU)", n);
  std::swap(a, b); // The loop swapped once more after finding the gate.
  int act = onlyReader(out(silu), "Mul");
  std::vector<int> downReaders =
      act < 0 ? std::vector<int>() : readers(out(act));
  std::optional<Projection> down =
      downReaders.size() == 1 ? projection(downReaders[0]) : std::nullopt;
  int add = down ? onlyReader(out(down->node), "Add") : -1;
  if (act < 0 || other(act, out(silu)) != out(b->node) || !down ||
      in(down->node, 0) != out(act) || add < 0 ||
      other(add, out(down->node)) != h)
    return fail(block,
                "SiLU(gate) * up does not reach a MatMul by a weight "
                "(down_proj) added to the residual stream",
                n);
  if (cfg.numLayers == 0)
    cfg.intermediateSize = a->shape[0];
  std::string p = "model.layers." + layer + ".mlp.";
  result.weights[p + "gate_proj.weight"] = a->ref;
  result.weights[p + "up_proj.weight"] = b->ref;
  result.weights[p + "down_proj.weight"] = down->ref;
  return Block{out(add), add};
}

Status Recogniser::checkResidualReaders(const std::string &h, const Norm &norm,
                                        int residual) {
  for (int c : readers(h))
    if (c != residual && std::find(norm.entries.begin(), norm.entries.end(),
                                   c) == norm.entries.end())
      return fail("residual stream",
                  "node " + m.describe(c) +
                      " reads it besides the norm and the residual Add",
                  h);
  return Status::ok();
}

StatusOr<OnnxDecoder> Recogniser::run() {
  KVRT_RETURN_IF_ERROR(checkWeightDims());
  StatusOr<std::string> embedded = embedding();
  if (!embedded)
    return embedded.status();
  // Values that depend on the tokens; shapes of them do not.
  data.insert(*embedded);
  for (int i : m.order()) {
    if (m.opName(i) == "Shape" || m.opName(i) == "Size")
      continue;
    for (const std::string &v : node(i).input())
      if (data.count(v)) {
        data.insert(node(i).output().begin(), node(i).output().end());
        break;
      }
  }
  std::string h = *embedded;
  cfg.architecture = "llama";
  for (;;) {
    std::vector<int> r = readers(h);
    bool isLayer = std::any_of(r.begin(), r.end(),
                               [&](int c) { return m.opName(c) == "Add"; });
    if (!isLayer)
      break;
    layer = std::to_string(cfg.numLayers);
    prefix = "layer " + layer + ": ";
    std::string p = "model.layers." + layer + ".";
    StatusOr<Norm> n1 = norm(h, "input RMSNorm");
    if (!n1)
      return n1.status();
    StatusOr<Block> attn = attention(h, n1->out);
    if (!attn)
      return attn.status();
    KVRT_RETURN_IF_ERROR(checkResidualReaders(h, *n1, attn->residual));
    StatusOr<Norm> n2 = norm(attn->out, "post-attention RMSNorm");
    if (!n2)
      return n2.status();
    StatusOr<Block> ffn = mlp(attn->out, n2->out);
    if (!ffn)
      return ffn.status();
    KVRT_RETURN_IF_ERROR(checkResidualReaders(attn->out, *n2, ffn->residual));
    result.weights[p + "input_layernorm.weight"] = {n1->gamma, false};
    result.weights[p + "post_attention_layernorm.weight"] = {n2->gamma, false};
    h = ffn->out;
    ++cfg.numLayers;
  }
  prefix.clear();
  if (cfg.numLayers == 0)
    return fail("decoder",
                "no decoder layer (RMSNorm, attention, residual "
                "Add) follows the token embedding",
                h);
  StatusOr<Norm> final = norm(h, "final RMSNorm");
  if (!final)
    return final.status();
  std::vector<int> r = readers(final->out);
  std::optional<Projection> head =
      r.size() == 1 ? projection(r[0]) : std::nullopt;
  if (!head ||
      head->shape != std::vector<int64_t>{cfg.vocabSize, cfg.hiddenSize})
    return fail("lm_head",
                "the final norm is not read by one MatMul by a [" +
                    std::to_string(cfg.hiddenSize) + ", vocab] weight",
                final->out);
  result.weights["model.norm.weight"] = {final->gamma, false};
  const OnnxWeightRef &embed = result.weights["model.embed_tokens.weight"];
  cfg.tieWordEmbeddings = head->ref.initializer == embed.initializer;
  if (!cfg.tieWordEmbeddings && head->ref.transposed) {
    // Exporters often store the tied table again, transposed for MatMul.
    const OnnxTensor *e = m.constant(embed.initializer);
    const OnnxTensor *w = m.constant(head->ref.initializer);
    bool same = e->dataType == w->dataType && e->byteSize == w->byteSize;
    uint64_t rows = e->shape[0], cols = e->shape[1];
    uint64_t size = e->byteSize / std::max<uint64_t>(1, rows * cols);
    for (uint64_t i = 0; same && i < rows; ++i)
      for (uint64_t j = 0; same && j < cols; ++j)
        same = std::memcmp(e->data + (i * cols + j) * size,
                           w->data + (j * rows + i) * size, size) == 0;
    cfg.tieWordEmbeddings = same;
  }
  if (!cfg.tieWordEmbeddings)
    result.weights["lm_head.weight"] = head->ref;
  return std::move(result);
}

} // namespace

StatusOr<OnnxDecoder> recogniseDecoder(const formats::OnnxModel &model) {
  return Recogniser(model).run();
}

} // namespace kvopt::import
