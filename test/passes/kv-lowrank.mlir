// kv-lowrank stores the values (or, side=key, the keys) of the selected
// layers as a latent on their calibrated axes: it rewrites that side's
// encoding to #kv.lowrank<rank = r, latent = the encoding it had>, and a
// later kv-quantize of the side encodes the latent.

// By default each sequence's first 4 and last 64 tokens stay exact too, and
// values take the axes of their attention-weighted second moment.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5 layers=0})' | FileCheck %s --check-prefix=RATIO
// RATIO-LABEL: func.func @model(
// RATIO: kv.cache layer 0 {{.*}}: !kv.cache<heads = 1, head_dim = 4, value = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = attention>>
// RATIO: kv.append {{.*}} into !kv.cache<heads = 1, head_dim = 4, value = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = attention>>
// RATIO: kv.cache layer 1 : !kv.cache<heads = 1, head_dim = 4>

// Keys (side=key) on their query-weighted axes, values untouched; both.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{side=key ratio=0.25 layers=0})' | FileCheck %s --check-prefix=KEY
// KEY: kv.cache layer 0 {{.*}}: !kv.cache<heads = 1, head_dim = 4, key = #kv.lowrank<rank = 1, sinks = 4, window = 64, centred = true>>
// Keys are centred on their calibrated mean (kv.key_mean) unless
// centre=false; values refuse the option, and keys without a mean the
// default.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{side=key ratio=0.25 layers=0 centre=false})' | FileCheck %s --check-prefix=KEY-PLAIN
// KEY-PLAIN: kv.cache layer 0 {{.*}}: !kv.cache<heads = 1, head_dim = 4, key = #kv.lowrank<rank = 1, sinks = 4, window = 64>>
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5 centre=true})' 2>&1 | FileCheck %s --check-prefix=ERR-CENTRE-VALUE
// ERR-CENTRE-VALUE: error: kv-lowrank: option 'centre' is given with side=value; values are stored around 0 on the axes of their second moment, which keep the attention sink's value (docs/lowrank.md); only keys are centred
// RUN: not kvopt-opt %S/Inputs/key-axes-no-mean.mlir --pass-pipeline='builtin.module(kv-lowrank{side=key rank=2})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-MEAN
// ERR-NO-MEAN: error: kv-lowrank: centre=true (the default for keys) needs layer 0's calibrated key mean ('kv.key_mean'); the module has no statistics: calibrate again with this kvopt, or give centre=false
// RUN: kvopt-opt %S/Inputs/key-axes-no-mean.mlir --pass-pipeline='builtin.module(kv-lowrank{side=key rank=2 centre=false})' | FileCheck %s --check-prefix=NO-MEAN-PLAIN
// NO-MEAN-PLAIN: key = #kv.lowrank<rank = 2, sinks = 4, window = 64>
// RUN: not kvopt-opt %S/Inputs/key-mean-shape.mlir 2>&1 | FileCheck %s --check-prefix=ERR-MEAN-SHAPE
// ERR-MEAN-SHAPE: error: 'kv.cache' op 'kv.key_mean' must be a dense tensor<1x4xf32>
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{side=key rank=3 layers=0},kv-lowrank{rank=2 layers=0})' | FileCheck %s --check-prefix=BOTH
// BOTH: kv.cache layer 0 {{.*}}: !kv.cache<heads = 1, head_dim = 4, key = #kv.lowrank<rank = 3, sinks = 4, window = 64, centred = true>, value = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = attention>>

// With a ratio, ranks follow the calibrated spectra (averaging the ratio):
// layer 0's values hold most of their plain second moment in one axis,
// layer 1's spread it evenly, so on those axes (value_basis=second_moment)
// layer 1 gets the rank layer 0 does not need.
// RUN: kvopt-opt %S/Inputs/lowrank-allocate.mlir --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5 value_basis=second_moment})' | FileCheck %s --check-prefix=ALLOCATE
// ALLOCATE: kv.cache layer 0 {{.*}}value = #kv.lowrank<rank = 1, sinks = 4, window = 64>>
// ALLOCATE: kv.cache layer 1 {{.*}}value = #kv.lowrank<rank = 3, sinks = 4, window = 64>>
// value_basis=attention, the default: the values' axes and spectrum
// weighted by attention (kv.value_attention_axes,
// kv.value_attention_spectrum), recorded in the encoding for the exporter;
// here the spectra swap the ranks.
// RUN: kvopt-opt %S/Inputs/lowrank-allocate.mlir --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5})' | FileCheck %s --check-prefix=ATTENTION
// ATTENTION: kv.cache layer 0 {{.*}}value = #kv.lowrank<rank = 3, sinks = 4, window = 64, basis = attention>>
// ATTENTION: kv.cache layer 1 {{.*}}value = #kv.lowrank<rank = 1, sinks = 4, window = 64, basis = attention>>
// kv-quantize of the latent and a later kv-lowrank keep the basis.
// RUN: kvopt-opt %S/Inputs/lowrank-allocate.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2 value_basis=attention},kv-quantize{encoding=fp8 side=value})' | FileCheck %s --check-prefix=ATTENTION-FP8
// ATTENTION-FP8: kv.cache layer 0 {{.*}}value = #kv.lowrank<rank = 2, latent = #kv.fp8<e4m3, scale = dynamic>, sinks = 4, window = 64, basis = attention>>
// Without the attention-weighted axes (older statistics) the default is
// refused, given or not, in one sentence that says what to do; the plain
// axes stay available. Keys refuse it when given.
// RUN: not kvopt-opt %S/Inputs/value-axes-only.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-ATTENTION
// RUN: not kvopt-opt %S/Inputs/value-axes-only.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2 value_basis=attention})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-ATTENTION
// ERR-NO-ATTENTION: error: kv-lowrank: value_basis=attention (the default for values) needs layer 0's attention-weighted value axes ('kv.value_attention_axes'), which come from the statistics' value_attention_moment; the module has no statistics: calibrate again with this kvopt, on windows longer than the exact sinks and window, or give value_basis=second_moment
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{side=key ratio=0.5 value_basis=attention})' 2>&1 | FileCheck %s --check-prefix=ERR-KEY-ATTENTION
// ERR-KEY-ATTENTION: error: kv-lowrank: option 'value_basis' is attention, which only values have; keys take their query-weighted axes
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5 value_basis=pca})' 2>&1 | FileCheck %s --check-prefix=ERR-BASIS
// ERR-BASIS: error: kv-lowrank: option 'value_basis' is 'pca'; it must be second_moment or attention
// RUN: kvopt-opt %S/Inputs/lowrank-allocate.mlir --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5 allocate=uniform})' | FileCheck %s --check-prefix=UNIFORM
// UNIFORM: kv.cache layer 0 {{.*}}value = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = attention>>
// UNIFORM: kv.cache layer 1 {{.*}}value = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = attention>>
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5 allocate=greedy})' 2>&1 | FileCheck %s --check-prefix=ERR-ALLOCATE
// ERR-ALLOCATE: error: kv-lowrank: option 'allocate' is 'greedy'; it must be spectrum or uniform
// Axes without a spectrum: a ratio needs allocate=uniform, a rank does not.
// RUN: not kvopt-opt %S/Inputs/value-axes-only.mlir --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5 value_basis=second_moment})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-SPECTRUM
// ERR-NO-SPECTRUM: error: kv-lowrank: layer 0 has no calibrated value spectrum ('kv.value_spectrum') to allocate ranks by; calibrate again or give allocate=uniform
// RUN: kvopt-opt %S/Inputs/value-axes-only.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2 value_basis=second_moment})' | FileCheck %s --check-prefix=RANK-NO-SPECTRUM
// RANK-NO-SPECTRUM: value = #kv.lowrank<rank = 2, sinks = 4, window = 64>

// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5 layers=0 sinks=0 window=0})' | FileCheck %s --check-prefix=NO-EXACT
// NO-EXACT: kv.cache layer 0 {{.*}}: !kv.cache<heads = 1, head_dim = 4, value = #kv.lowrank<rank = 2, basis = attention>>

// kv-quantize encodes the latent and keeps the exact tokens.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{rank=3 layers=0 sinks=2 window=16},kv-quantize{encoding=fp8 side=value layers=0})' | FileCheck %s --check-prefix=FP8-LATENT
// FP8-LATENT: kv.cache layer 0 {{.*}}: !kv.cache<heads = 1, head_dim = 4, value = #kv.lowrank<rank = 3, latent = #kv.fp8<e4m3, scale = dynamic>, sinks = 2, window = 16, basis = attention>>

// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-UNCALIBRATED
// ERR-UNCALIBRATED: error: kv-lowrank: layer 1 has no calibrated value axes ('kv.value_axes'); run `kvopt compile --calibrate FILE` with statistics that record value covariances
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{rank=4 layers=0})' 2>&1 | FileCheck %s --check-prefix=ERR-FULL
// ERR-FULL: error: kv-lowrank: rank 4 keeps every coordinate of heads of 4; it must be below 4
// A later invocation replaces the rank and exact tokens of the layers it
// selects and keeps the latent's encoding (policy overrides rely on it).
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{rank=2 layers=0},kv-quantize{encoding=fp8 side=value layers=0},kv-lowrank{rank=1 layers=0 window=8})' | FileCheck %s --check-prefix=TWICE
// TWICE: kv.cache layer 0 {{.*}}value = #kv.lowrank<rank = 1, latent = #kv.fp8<e4m3, scale = dynamic>, sinks = 4, window = 8, basis = attention>>
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{method=qr ratio=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-METHOD
// ERR-METHOD: error: kv-lowrank: option 'method' is 'qr'; it must be pca, svd or lrkv

// method=lrkv: per head, round(shared x rank) axes shared by the layer's KV
// heads (of the sum of their moments) and the rest the head's own axes on
// their complement, fitted to the moments of pca's axes and put on the
// cache as groups of one head (kv.value_group_axes [heads][d][d + 1], the
// last column 0 for values, the weights for keys); basis = lrkv.
// RUN: kvopt-opt %S/Inputs/lowrank-lrkv.mlir --pass-pipeline='builtin.module(kv-lowrank{method=lrkv rank=2})' | FileCheck %s --check-prefix=LRKV
// LRKV: kv.value_group_axes = dense<{{\[\[\[}}0.000000e+00, 1.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00], [1.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00], [0.000000e+00, 0.000000e+00, 1.000000e+00, 0.000000e+00, 0.000000e+00], [0.000000e+00, 0.000000e+00, 0.000000e+00, 1.000000e+00, 0.000000e+00]], {{\[\[}}0.000000e+00, 0.000000e+00, 0.000000e+00, 1.000000e+00, 0.000000e+00], [1.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00], [0.000000e+00, 1.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00], [0.000000e+00, 0.000000e+00, 1.000000e+00, 0.000000e+00, 0.000000e+00]]]> : tensor<2x4x5xf32>
// LRKV-SAME: value = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = lrkv>
// shared=0 keeps each head's own axes (method=pca's): head 0 e0 first.
// RUN: kvopt-opt %S/Inputs/lowrank-lrkv.mlir --pass-pipeline='builtin.module(kv-lowrank{method=lrkv rank=2 shared=0.0})' | FileCheck %s --check-prefix=LRKV-OWN
// LRKV-OWN: kv.value_group_axes = dense<{{\[\[\[}}1.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00], [0.000000e+00, 1.000000e+00,
// Keys: the query-weighted moments, the weights kept as the last column.
// RUN: kvopt-opt %S/Inputs/lowrank-lrkv.mlir --pass-pipeline='builtin.module(kv-lowrank{method=lrkv side=key ratio=0.5 shared=1.0})' | FileCheck %s --check-prefix=LRKV-KEY
// LRKV-KEY: kv.key_group_axes = dense<{{\[\[\[}}{{[^]]*}}, 2.000000e+00], [{{[^]]*}}, 2.000000e+00], [{{[^]]*}}, 5.000000e-01], [{{[^]]*}}, 5.000000e-01]], {{\[\[}}{{[^]]*}}, 1.000000e+00], [{{[^]]*}}, 1.000000e+00], [{{[^]]*}}, 1.000000e+00], [{{[^]]*}}, 1.000000e+00]]]> : tensor<2x4x5xf32>
// LRKV-KEY-SAME: key = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = lrkv, centred = true>
// Refused: a group (the shared basis spans the heads already), `shared`
// without lrkv or outside [0, 1], and statistics without the spectrum the
// heads' moments are rebuilt from.
// RUN: not kvopt-opt %S/Inputs/lowrank-lrkv.mlir --pass-pipeline='builtin.module(kv-lowrank{method=lrkv group=2 rank=2})' 2>&1 | FileCheck %s --check-prefix=ERR-LRKV-GROUP
// ERR-LRKV-GROUP: error: kv-lowrank: option 'group' is 2 with method=lrkv, whose shared basis spans the layer's KV heads already; each head keeps its own latent (group=1)
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{shared=0.5 ratio=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-SHARED-PCA
// ERR-SHARED-PCA: error: kv-lowrank: option 'shared' is given with method=pca; only method=lrkv has a shared basis
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{method=lrkv shared=1.5 ratio=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-SHARED
// ERR-SHARED: error: kv-lowrank: option 'shared' is 1.5; it must be in [0, 1]
// RUN: not kvopt-opt %S/Inputs/value-axes-only.mlir --pass-pipeline='builtin.module(kv-lowrank{method=lrkv rank=2 value_basis=second_moment})' 2>&1 | FileCheck %s --check-prefix=ERR-LRKV-SPECTRUM
// ERR-LRKV-SPECTRUM: error: kv-lowrank: method=lrkv needs layer 0's calibrated value spectrum ('kv.value_spectrum') to rebuild its heads' moments from; calibrate again

// method=svd, Palu's whitened SVD of the projection, is PCA of the
// projection's uncentred second moment (docs/lowrank.md proves it):
// values on kv.value_axes, keys on kv.key_moment_axes (before RoPE,
// unweighted), recorded as basis = svd for the exporter.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{method=svd side=key rank=1 layers=0},kv-lowrank{method=svd group=1 rank=3 layers=0})' | FileCheck %s --check-prefix=SVD
// SVD: kv.cache layer 0 {{.*}}: !kv.cache<heads = 1, head_dim = 4, key = #kv.lowrank<rank = 1, sinks = 4, window = 64, basis = svd, centred = true>, value = #kv.lowrank<rank = 3, sinks = 4, window = 64, basis = svd>>
// With a ratio, ranks follow those axes' spectra: kv.value_spectrum for
// values (as with value_basis=second_moment, not the attention-weighted
// one that swaps them), kv.key_moment_spectrum for keys.
// RUN: kvopt-opt %S/Inputs/lowrank-allocate.mlir --pass-pipeline='builtin.module(kv-lowrank{method=svd ratio=0.5})' | FileCheck %s --check-prefix=SVD-ALLOCATE
// SVD-ALLOCATE: kv.cache layer 0 {{.*}}value = #kv.lowrank<rank = 1, sinks = 4, window = 64, basis = svd>>
// SVD-ALLOCATE: kv.cache layer 1 {{.*}}value = #kv.lowrank<rank = 3, sinks = 4, window = 64, basis = svd>>
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{method=svd side=key ratio=0.5 layers=0})' | FileCheck %s --check-prefix=SVD-KEY-RATIO
// SVD-KEY-RATIO: key = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = svd, centred = true>
// group=G: one latent per group of G KV heads, over their concatenated
// coordinates, on the axes of the group's block of the layer's joint
// moment, which the pass puts on the cache (kv.value_group_axes:
// [groups][G head_dim][G head_dim + 1]); the rank is the group latent's,
// G round(ratio head_dim), and the encoding records the group.
// RUN: kvopt-opt %S/Inputs/lowrank-group.mlir --pass-pipeline='builtin.module(kv-lowrank{method=svd group=2 ratio=0.5 allocate=uniform layers=0-1})' | FileCheck %s --check-prefix=GROUP
// GROUP: kv.cache layer 0 {{.*}}kv.value_group_axes = dense<{{.*}}> : tensor<1x8x9xf32>{{.*}}value = #kv.lowrank<rank = 4, sinks = 4, window = 64, basis = svd, group = 2>>
// GROUP: kv.cache layer 1 {{.*}}value = #kv.lowrank<rank = 4, sinks = 4, window = 64, basis = svd, group = 2>>
// Layer 0's correlated heads: the group's first axis is their sum,
// (e_0 + e_4) / sqrt 2, its last column 0 (the values' centre).
// RUN: kvopt-opt %S/Inputs/lowrank-group.mlir --pass-pipeline='builtin.module(kv-lowrank{group=2 rank=2 layers=0})' | FileCheck %s --check-prefix=GROUP-AXES
// GROUP-AXES: kv.value_group_axes = dense<{{\[\[\[}}0.707106{{[0-9]*}}, {{[^]]*}}0.000000e+00], [0.000000e+00, {{.*}}], {{.*}}], [0.707106{{[0-9]*}}, {{[^]]*}}0.000000e+00]{{.*}}value = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = attention, group = 2>
// Ranks follow the joint spectra in steps of G head_dim / 8 (2 here): layer
// 0 keeps most of its moment in one direction, layer 1 needs the rank.
// RUN: kvopt-opt %S/Inputs/lowrank-group.mlir --pass-pipeline='builtin.module(kv-lowrank{method=svd group=2 ratio=0.5 layers=0-1})' | FileCheck %s --check-prefix=GROUP-ALLOCATE
// GROUP-ALLOCATE: kv.cache layer 0 {{.*}}value = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = svd, group = 2>>
// GROUP-ALLOCATE: kv.cache layer 1 {{.*}}value = #kv.lowrank<rank = 6, sinks = 4, window = 64, basis = svd, group = 2>>
// Query-weighted keys (method=pca): the group's axes of W M W carry the
// weights of kv.key_axes (head 0: 2, 2, 0.5, 0.5) as their last column.
// RUN: kvopt-opt %S/Inputs/lowrank-group.mlir --pass-pipeline='builtin.module(kv-lowrank{side=key group=2 rank=4 layers=0})' | FileCheck %s --check-prefix=GROUP-KEY
// GROUP-KEY: kv.key_group_axes = dense<{{\[\[\[}}{{[^]]*}}, 2.000000e+00], [{{[^]]*}}, 2.000000e+00], [{{[^]]*}}, 5.000000e-01], [{{[^]]*}}, 5.000000e-01], [{{[^]]*}}, 1.000000e+00]{{.*}} : tensor<1x8x9xf32>{{.*}}key = #kv.lowrank<rank = 4, sinks = 4, window = 64, group = 2, centred = true>
// A quantized latent: each head stores rank / G coordinates, which polar
// needs to be a power of two.
// RUN: kvopt-opt %S/Inputs/lowrank-group.mlir --pass-pipeline='builtin.module(kv-lowrank{method=svd group=2 rank=4 layers=0},kv-quantize{encoding=polar bits=4 side=value layers=0})' | FileCheck %s --check-prefix=GROUP-POLAR
// GROUP-POLAR: value = #kv.lowrank<rank = 4, latent = #kv.polar<bits = 4{{.*}}>, sinks = 4, window = 64, basis = svd, group = 2>
// RUN: not kvopt-opt %S/Inputs/lowrank-group.mlir --pass-pipeline='builtin.module(kv-lowrank{method=svd group=2 rank=6 layers=0},kv-quantize{encoding=polar bits=4 side=value layers=0})' 2>&1 | FileCheck %s --check-prefix=ERR-GROUP-POLAR
// ERR-GROUP-POLAR: error: !kv.cache value encoding: #kv.polar rotates with a Hadamard transform, which needs a power-of-two #kv.lowrank rank / group, got 3
// Eviction with a group must keep the same entries in the group's heads:
// the kv.evict verifier refuses heads=each (test/dialect/invalid.mlir,
// test/compile/lowrank.test).
// What the group must be, and its rank.
// RUN: not kvopt-opt %S/Inputs/lowrank-group.mlir --pass-pipeline='builtin.module(kv-lowrank{method=svd group=2 ratio=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-GROUP
// ERR-GROUP: error: kv-lowrank: group=2 does not divide layer 2's 3 KV heads; give a divisor of them (1 keeps a latent per head)
// RUN: not kvopt-opt %S/Inputs/lowrank-group.mlir --pass-pipeline='builtin.module(kv-lowrank{method=svd group=2 rank=3 layers=0})' 2>&1 | FileCheck %s --check-prefix=ERR-GROUP-RANK
// ERR-GROUP-RANK: error: kv-lowrank: rank 3 is not a multiple of group=2; each head of a group stores an equal share of its latent
// RUN: not kvopt-opt %S/Inputs/lowrank-group.mlir --pass-pipeline='builtin.module(kv-lowrank{method=svd group=2 rank=8 layers=0})' 2>&1 | FileCheck %s --check-prefix=ERR-GROUP-FULL
// ERR-GROUP-FULL: error: kv-lowrank: rank 8 keeps every coordinate of groups of 2 heads of 4; it must be below 8
// RUN: not kvopt-opt %S/Inputs/lowrank-group-no-joint.mlir --pass-pipeline='builtin.module(kv-lowrank{group=2 rank=2})' 2>&1 | FileCheck %s --check-prefix=ERR-GROUP-JOINT
// ERR-GROUP-JOINT: error: kv-lowrank: group=2 needs layer 0's joint value moment across its KV heads ('kv.value_attention_joint_moment'); the module has no statistics: calibrate again with this kvopt
// svd has one basis, so value_basis is refused with it; keys need their
// plain moment's axes.
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{method=svd group=0 ratio=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-GROUP0
// ERR-GROUP0: error: kv-lowrank: option 'group' is 0; it must be at least 1
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{method=svd ratio=0.5 value_basis=second_moment})' 2>&1 | FileCheck %s --check-prefix=ERR-SVD-BASIS
// ERR-SVD-BASIS: error: kv-lowrank: option 'value_basis' is given with method=svd, whose axes are those of the whitened projection (the plain second moment's); it chooses among method=pca's
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{method=svd side=key rank=2 layers=1})' 2>&1 | FileCheck %s --check-prefix=ERR-SVD-KEY
// ERR-SVD-KEY: error: kv-lowrank: layer 1 has no calibrated key axes ('kv.key_moment_axes'); run `kvopt compile --calibrate FILE` with statistics that record key covariances of a model with RoPE
// RUN: not kvopt-opt %S/Inputs/key-moment-axes-shape.mlir 2>&1 | FileCheck %s --check-prefix=ERR-KEY-MOMENT-AXES
// ERR-KEY-MOMENT-AXES: error: 'kv.cache' op 'kv.key_moment_axes' must be a dense tensor<1x4x4xf32>
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{side=both ratio=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-SIDE
// ERR-SIDE: error: kv-lowrank: option 'side' is 'both'; it must be key or value
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{side=key ratio=0.5 layers=1})' 2>&1 | FileCheck %s --check-prefix=ERR-KEY-UNCALIBRATED
// ERR-KEY-UNCALIBRATED: error: kv-lowrank: layer 1 has no calibrated key axes ('kv.key_axes'); run `kvopt compile --calibrate FILE` with statistics that record key covariances and query magnitudes of a model with RoPE
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank)' 2>&1 | FileCheck %s --check-prefix=ERR-NONE
// ERR-NONE: error: kv-lowrank: option 'ratio' is missing; give ratio=R in (0, 1) or rank=N
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{ratio=0.5 rank=2})' 2>&1 | FileCheck %s --check-prefix=ERR-BOTH
// ERR-BOTH: error: kv-lowrank: option 'rank' is given with ratio; give one of them
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{ratio=1.5})' 2>&1 | FileCheck %s --check-prefix=ERR-RATIO
// ERR-RATIO: error: kv-lowrank: option 'ratio' is 1.5; it must be in (0, 1)
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{rank=2 layers=0 window=5000})' 2>&1 | FileCheck %s --check-prefix=ERR-WINDOW
// ERR-WINDOW: error: #kv.lowrank keeps 5000 window tokens exact; at most 4096 are allowed

// fold=true folds each KV head's value axes into the projections: v_proj's
// rows and bias by Q^T, o_proj's columns of every query head by Q, new
// constants in the old element types (o_proj stays bf16); the layer's output
// is unchanged and the latent is the first `rank` coordinates of what the
// append stores (docs/lowrank.md). Axes swapping coordinates 0 and 1 swap
// v_proj's rows 0 and 1 and o_proj's columns 0, 1 and 4, 5.
// RUN: kvopt-opt %S/Inputs/lowrank-fold.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2 fold=true layers=0})' | FileCheck %s --check-prefix=FOLD
// FOLD:      %[[WV:.+]] = arith.constant dense<{{\[\[}}5.000000e+00, 6.000000e+00, 7.000000e+00, 8.000000e+00], [1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00], [9.000000e+00, {{.*}}]]> : tensor<4x4xf32>
// FOLD-NEXT: %[[BV:.+]] = arith.constant dense<[5.000000e-01, 2.500000e-01, 7.500000e-01, 1.000000e+00]> : tensor<4xf32>
// FOLD-NEXT: %[[WO:.+]] = arith.constant dense<{{\[\[}}2.000000e+00, 1.000000e+00, 3.000000e+00, 4.000000e+00, 6.000000e+00, 5.000000e+00, 7.000000e+00, 8.000000e+00], [1.000000e+01, 9.000000e+00, {{.*}}]]> : tensor<4x8xbf16>
// FOLD-NEXT: kv.linear %{{.+}}, %[[WV]] bias %[[BV]]
// FOLD:      kv.cache layer 0 {{.*}}value = #kv.lowrank<rank = 2, sinks = 4, window = 64, basis = attention, folded = true>>
// FOLD:      kv.linear %{{.+}}, %[[WO]] :
// A later kv-lowrank on the same axes changes the rank and exact tokens and
// folds nothing again (the rows stay swapped once); kv-quantize keeps the
// fold.
// RUN: kvopt-opt %S/Inputs/lowrank-fold.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2 fold=true layers=0},kv-lowrank{rank=3 fold=true window=8 layers=0},kv-quantize{encoding=fp8 side=value layers=0})' | FileCheck %s --check-prefix=FOLD-AGAIN
// FOLD-AGAIN: arith.constant dense<{{\[\[}}5.000000e+00, 6.000000e+00, 7.000000e+00, 8.000000e+00], [1.000000e+00,
// FOLD-AGAIN: kv.cache layer 0 {{.*}}value = #kv.lowrank<rank = 3, latent = #kv.fp8<e4m3, scale = dynamic>, sinks = 4, window = 8, basis = attention, folded = true>>
// Refused: other axes after a fold, keys, groups, a layer not in the
// importers' form, axes that are not orthonormal, weights without bytes,
// and a folded key encoding written by hand.
// RUN: not kvopt-opt %S/Inputs/lowrank-fold.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2 fold=true layers=0},kv-lowrank{rank=3 layers=0 value_basis=second_moment})' 2>&1 | FileCheck %s --check-prefix=ERR-FOLD-AXES
// ERR-FOLD-AXES: error: kv-lowrank: layer 0's values were folded on the attention axes by an earlier kv-lowrank{fold=true}; v_proj writes them on those, so a later kv-lowrank may change their rank and exact tokens on the same axes (method=lrkv's depend on the rank), not take others
// RUN: not kvopt-opt %S/Inputs/lowrank-fold.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2 fold=true side=key})' 2>&1 | FileCheck %s --check-prefix=ERR-FOLD-KEY
// ERR-FOLD-KEY: error: kv-lowrank: option 'fold' is true with side=key; RoPE rotates each key by its position between k_proj and the cache, so only values fold
// RUN: not kvopt-opt %S/Inputs/lowrank-fold.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2 fold=true group=2 method=svd})' 2>&1 | FileCheck %s --check-prefix=ERR-FOLD-GROUP
// ERR-FOLD-GROUP: error: kv-lowrank: option 'fold' is true with group=2; a group's latent mixes its heads, which o_proj reads apart, so only group=1 folds
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-lowrank{rank=2 fold=true layers=0})' 2>&1 | FileCheck %s --check-prefix=ERR-FOLD-FORM
// ERR-FOLD-FORM: error: kv-lowrank: fold=true rewrites layer 0's v_proj and o_proj, but its cache is not appended and attended once each
// RUN: not kvopt-opt %S/Inputs/lowrank-fold.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2 fold=true layers=1 value_basis=second_moment})' 2>&1 | FileCheck %s --check-prefix=ERR-FOLD-ORTHONORMAL
// ERR-FOLD-ORTHONORMAL: error: kv-lowrank: fold=true rewrites layer 1's v_proj and o_proj, but its value axes are not orthonormal (|Q^T Q - I| reaches 5.000000e-01), so o_proj cannot undo them
// RUN: not kvopt-opt %S/Inputs/lowrank-fold.mlir --pass-pipeline='builtin.module(kv-lowrank{rank=2 fold=true layers=1})' 2>&1 | FileCheck %s --check-prefix=ERR-FOLD-BYTES
// ERR-FOLD-BYTES: error: kv-lowrank: fold=true rewrites layer 1's o_proj, but its bytes are not here (a synthetic model's weights are generated at run time; fold a model read from a file)

// The calibrated attributes are checked where they are parsed.
// RUN: not kvopt-opt %S/Inputs/value-axes-shape.mlir 2>&1 | FileCheck %s --check-prefix=ERR-AXES
// ERR-AXES: error: 'kv.cache' op 'kv.value_axes' must be a dense tensor<1x4x4xf32>
// RUN: not kvopt-opt %S/Inputs/value-axes-nan.mlir 2>&1 | FileCheck %s --check-prefix=ERR-NAN
// ERR-NAN: error: 'kv.cache' op 'kv.value_axes' of head 0 must be finite, got nan
// RUN: not kvopt-opt %S/Inputs/spectrum-negative.mlir 2>&1 | FileCheck %s --check-prefix=ERR-SPECTRUM
// ERR-SPECTRUM: error: 'kv.cache' op 'kv.value_spectrum' of head 0 must be finite and non-negative, got -1
// RUN: not kvopt-opt %S/Inputs/key-axes-weight.mlir 2>&1 | FileCheck %s --check-prefix=ERR-WEIGHT
// ERR-WEIGHT: error: 'kv.cache' op 'kv.key_axes' of head 0 must be finite with positive weights, got 0

func.func @model(%k: tensor<?x1x4xf32>, %v: tensor<?x1x4xf32>, %pos: tensor<?xi32>) {
  %c0 = kv.cache layer 0 {kv.value_axes = dense<[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>, kv.value_spectrum = dense<[[4.0, 3.0, 2.0, 1.0]]> : tensor<1x4xf32>, kv.value_attention_axes = dense<[[[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>, kv.value_attention_spectrum = dense<[[4.0, 3.0, 2.0, 1.0]]> : tensor<1x4xf32>, kv.key_axes = dense<[[[1.0, 0.0, 0.0, 0.0, 2.0], [0.0, 1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0, 0.5]]]> : tensor<1x4x5xf32>, kv.key_spectrum = dense<[[4.0, 3.0, 2.0, 1.0]]> : tensor<1x4xf32>, kv.key_moment_axes = dense<[[[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]]> : tensor<1x4x4xf32>, kv.key_moment_spectrum = dense<[[5.0, 1.0, 1.0, 1.0]]> : tensor<1x4xf32>, kv.key_mean = dense<[[0.5, -0.25, 1.0, 0.0]]> : tensor<1x4xf32>} : !kv.cache<heads = 1, head_dim = 4>
  %c0b = kv.append %k, %v at %pos into %c0 : tensor<?x1x4xf32>, tensor<?x1x4xf32>, tensor<?xi32> into !kv.cache<heads = 1, head_dim = 4>
  %c1 = kv.cache layer 1 : !kv.cache<heads = 1, head_dim = 4>
  return
}
