//===- KVTypes.td - Types of the kv dialect ----------------*- tablegen -*-===//
#ifndef KV_TYPES_TD
#define KV_TYPES_TD

include "dialects/kv/IR/KVBase.td"

def KV_CacheType : KV_Type<"Cache", "cache"> {
  let summary = "The KV cache of one attention layer";
  let description = [{
    The keys and values of one layer for every sequence the runtime holds,
    stored in pages of `page` tokens (a page table per sequence). `heads` is
    the number of KV heads and `head_dim` the coordinates per head; `key` and
    `value` say how each vector is encoded.

    Example:
    ```mlir
    !kv.cache<heads = 3, head_dim = 64, page = 16, key = #kv.polar<bits = 4>,
              value = #kv.int<bits = 4, group = 32>>
    ```
  }];
  let parameters = (ins "int64_t":$heads, "int64_t":$head_dim,
                        DefaultValuedParameter<"int64_t", "16">:$page,
                        DefaultValuedParameter<"::mlir::Attribute",
                          "Bf16EncodingAttr::get($_ctxt)">:$key,
                        DefaultValuedParameter<"::mlir::Attribute",
                          "Bf16EncodingAttr::get($_ctxt)">:$value);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Bytes one token occupies in this cache, over all its KV heads, keys
    /// and values together, metadata included.
    double getBytesPerToken() const;
  }];
}

#endif // KV_TYPES_TD
