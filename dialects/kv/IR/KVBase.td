//===- KVBase.td - The kv dialect --------------------------*- tablegen -*-===//
#ifndef KV_BASE_TD
#define KV_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def KV_Dialect : Dialect {
  let name = "kv";
  let summary = "Attention and the KV cache of decoder-only language models";
  let description = [{
    The `kv` dialect describes a decoder-only transformer at the level an
    inference engineer reads it: embedding, RMSNorm, linear projections,
    rotary embeddings, SwiGLU, and, made explicit, the KV cache and the
    attention that reads it. Cache types carry the layout (KV heads, head
    dimension, page size) and the encoding of keys and values; passes rewrite
    those encodings and insert eviction, selection, low-rank projection and
    offload, and the result lowers to the kernel calls of a `.kvpkg` plan.
    Weights are upstream `arith.constant dense_resource<...>` values, so they
    never travel through text.
  }];
  let cppNamespace = "::mlir::kv";
  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::tensor::TensorDialect"
  ];
  let extraClassDeclaration = [{
    void registerAttributes();
    void registerTypes();
  }];
  // What calibration records (compiler/calibrate/): on each kv.cache, the
  // largest |key| coordinate (after RoPE, as cached) and |value| coordinate
  // seen per KV head, one f32 per head; TriAttention's pre-RoPE centres of
  // the layer's queries and keys, per head and RoPE frequency pair f, as
  // (real, imaginary) E[q_f] (tensor<H x head_dim/2 x 2 x f32>) and mean
  // magnitudes E|q_f| (tensor<H x head_dim/2 x f32>), H the query heads (a
  // multiple of the cache's KV heads) or the KV heads; the principal axes
  // of each KV head's values (the eigenvectors of their second moment
  // E[v v^T], column k the k-th largest: tensor<kv_heads x head_dim x
  // head_dim x f32>), which low-rank caches project on; the query-weighted
  // axes of each KV head's pre-RoPE keys (the eigenvectors of S E[k k^T] S,
  // then the weights S: tensor<kv_heads x head_dim x (head_dim + 1) x
  // f32>, docs/lowrank.md); the eigenvalues of both, largest first
  // (tensor<kv_heads x head_dim x f32>), which kv-lowrank allocates ranks
  // by; the values' axes and eigenvalues again, of their second moment
  // weighted by the attention each token gets (kv.value_attention_axes,
  // kv.value_attention_spectrum, the shapes of the values'); the axes and
  // eigenvalues of the pre-RoPE keys' plain second moment E[k k^T]
  // (kv.key_moment_axes, kv.key_moment_spectrum, the shapes of the
  // values'), which kv-lowrank{method=svd} projects keys on; the pre-RoPE
  // keys' mean (kv.key_mean, tensor<kv_heads x head_dim x f32>), which
  // kv-lowrank{centre=true} takes key latents around; the joint
  // second moments of the layer's KV heads concatenated (pre-RoPE keys,
  // values, and values weighted by the attention each token gets from all
  // the layer's query heads: kv.key_joint_moment, kv.value_joint_moment,
  // kv.value_attention_joint_moment, tensor<1 x (kv_heads x head_dim) x
  // (kv_heads x head_dim) x f32>), whose diagonal blocks of G heads
  // kv-lowrank{group=G} takes the axes of, which it puts beside them as
  // kv.key_group_axes and kv.value_group_axes (tensor<kv_heads/G x G
  // head_dim x (G head_dim + 1) x f32>: per group the eigenvectors, largest
  // first, then the keys' weights or 0 for values); the attention mass
  // the best kept list of j/G of a query's entries leaves out, averaged
  // over the calibration queries, for j = 1..G (kv.evict_loss,
  // array<f32: ...>, in [0, 1] and non-increasing), which
  // kv-evict{allocate=attention} shares budget across layers by; on the
  // module, where they came from.
  let discardableAttrs = (ins
    "::mlir::DenseF32ArrayAttr":$key_absmax,
    "::mlir::DenseF32ArrayAttr":$value_absmax,
    "::mlir::DenseFPElementsAttr":$query_center,
    "::mlir::DenseFPElementsAttr":$query_magnitude,
    "::mlir::DenseFPElementsAttr":$key_center,
    "::mlir::DenseFPElementsAttr":$key_magnitude,
    "::mlir::DenseFPElementsAttr":$value_axes,
    "::mlir::DenseFPElementsAttr":$key_axes,
    "::mlir::DenseFPElementsAttr":$value_spectrum,
    "::mlir::DenseFPElementsAttr":$key_spectrum,
    "::mlir::DenseFPElementsAttr":$value_attention_axes,
    "::mlir::DenseFPElementsAttr":$value_attention_spectrum,
    "::mlir::DenseFPElementsAttr":$key_mean,
    "::mlir::DenseFPElementsAttr":$key_moment_axes,
    "::mlir::DenseFPElementsAttr":$key_moment_spectrum,
    "::mlir::DenseFPElementsAttr":$key_joint_moment,
    "::mlir::DenseFPElementsAttr":$value_joint_moment,
    "::mlir::DenseFPElementsAttr":$value_attention_joint_moment,
    "::mlir::DenseFPElementsAttr":$key_group_axes,
    "::mlir::DenseFPElementsAttr":$value_group_axes,
    "::mlir::DenseF32ArrayAttr":$evict_loss,
    "::mlir::kv::CalibrationAttr":$calibration
  );
  let hasOperationAttrVerify = 1;
}

class KV_Op<string mnemonic, list<Trait> traits = []>
    : Op<KV_Dialect, mnemonic, traits>;
class KV_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<KV_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}
class KV_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<KV_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

#endif // KV_BASE_TD
