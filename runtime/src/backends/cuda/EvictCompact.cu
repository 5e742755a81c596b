//===- EvictCompact.cu - Moving the kept entries to the front -------------===//
//
// One kernel for keys, values and the heads' positions (and H2O's mass). Every
// (sequence, KV head) row is cut into chunks of `chunk` destinations (as many
// entries as 512 threads hold in four words each, keys and values together); a
// block takes the next chunk from an atomic counter, so a chunk's block
// starts only after every earlier chunk's. It reads its chunk's sources
// (kept[i] for the i of the chunk not in place) into registers, fences,
// and raises the chunk's flag; then it waits for the flags of the earlier
// chunks of its row whose sources lie within its destinations (kept is
// ascending and kept[i] >= i, so no later chunk's sources do, and the
// earlier ones that do are few: at a quarter kept, the one chunk about a
// quarter of the way down), and writes. Each kept entry is read once and
// written once, the blocks fill the GPU (B = 8, L = 32K, 8 heads, a quarter
// kept: 8192 chunks), and none waits for a block that has not started.
// Words of up to sixteen bytes, as wide as both sides' alignment allows.
// EvictKernels.h.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/EvictKernels.h"

#include <cuda_runtime.h>

#include <algorithm>

namespace kvrt::cuda {
namespace {

constexpr int kThreads = 512;
/// Words a thread holds per chunk.
constexpr int kHeld = 4;

struct Sides {
  uint8_t *keys, *values;
  /// Words of one entry of each side.
  int keyWords, valueWords;
};

template <typename Word>
__global__ void __launch_bounds__(kThreads)
    compactKernel(EvictLaunch p, EvictWorkspace w, Sides sides, int chunk,
                  uint32_t chunksPerRow) {
  __shared__ uint32_t id;
  if (threadIdx.x == 0)
    id = atomicAdd(w.chunkCounter, 1u);
  __syncthreads();
  const uint32_t kvHeads = p.cache.kvHeads;
  const uint32_t row = id / chunksPerRow, c = id % chunksPerRow;
  const uint32_t sequence = row / kvHeads, h = row % kvHeads;
  const EvictSequence s = p.sequences[sequence];
  const int pageSize = int(p.cache.pageSize), tid = int(threadIdx.x);
  const int32_t *table =
      p.cache.pageTables + size_t(s.tableRow) * p.cache.pageTableStride;
  const int32_t *kept =
      w.kept + (size_t(sequence) * kvHeads + (p.shared ? 0 : h)) * p.maxKept;
  uint32_t *read = w.chunkRead + size_t(row) * chunksPerRow;
  const int first = int(c) * chunk;
  const int last = min(first + chunk, s.kept) - 1;
  // Ascending from kept[i] >= i: the whole chunk is in place when its last
  // entry is (the sinks).
  const bool moves = first < s.kept && kept[last] != last;
  // Selects, not indexing, so that nothing goes to local memory.
  auto word = [&](int side, int index, int at) {
    const DeviceSideLayout &l = side ? p.cache.value : p.cache.key;
    const size_t page = size_t(table[index / pageSize]);
    return reinterpret_cast<Word *>((side ? sides.values : sides.keys) +
                                    (page * kvHeads + h) * l.areaStride +
                                    l.codesOffset +
                                    size_t(index % pageSize) * l.entryBytes) +
           at;
  };
  auto position = [&](int index) {
    return p.positions +
           (size_t(table[index / pageSize]) * kvHeads + h) * pageSize +
           index % pageSize;
  };
  // Flat word f of the chunk: keys' words first, then values'.
  const int keyWords = chunk * sides.keyWords;
  const int words = keyWords + chunk * sides.valueWords;
  auto locate = [&](int f, int &side, int &i, int &at) {
    side = f < keyWords ? 0 : 1;
    const int g = side ? f - keyWords : f;
    const int per = side ? sides.valueWords : sides.keyWords;
    i = first + g / per;
    at = g % per;
  };
  Word held[kHeld];
  int32_t heldPosition = 0;
  float heldMass = 0;
  if (moves) {
#pragma unroll
    for (int r = 0; r < kHeld; ++r) {
      const int f = tid + r * kThreads;
      int side, i, at;
      locate(f, side, i, at);
      if (f < words && i <= last && kept[i] != i)
        held[r] = *word(side, kept[i], at);
    }
    const int i = first + tid;
    if (tid < chunk && i <= last && kept[i] != i) {
      heldPosition = *position(kept[i]);
      if (p.mass)
        heldMass = p.mass[position(kept[i]) - p.positions];
    }
  }
  // Sources read: say so (also for a chunk that moves nothing, which
  // waiters may name).
  __threadfence();
  __syncthreads();
  if (tid == 0)
    atomicExch(&read[c], 1u);
  if (!moves)
    return;
  for (int j = tid; j < int(c); j += kThreads) {
    const int lo = kept[j * chunk];
    const int hi = kept[min((j + 1) * chunk, s.kept) - 1];
    if (hi >= first && lo <= last)
      while (atomicAdd(&read[j], 0u) == 0)
        __nanosleep(100);
  }
  __threadfence();
  __syncthreads();
#pragma unroll
  for (int r = 0; r < kHeld; ++r) {
    const int f = tid + r * kThreads;
    int side, i, at;
    locate(f, side, i, at);
    if (f < words && i <= last && kept[i] != i)
      *word(side, i, at) = held[r];
  }
  const int i = first + tid;
  if (tid < chunk && i <= last && kept[i] != i) {
    *position(i) = heldPosition;
    if (p.mass)
      p.mass[position(i) - p.positions] = heldMass;
  }
}

/// The widest word that divides the entries and their offsets.
uint32_t wordBytes(const DeviceSideLayout &side) {
  uint32_t bytes = 16;
  while (bytes > 1 && (side.entryBytes % bytes || side.codesOffset % bytes ||
                       side.areaStride % bytes))
    bytes /= 2;
  return bytes;
}

template <typename Word>
Status launch(const EvictLaunch &p, const EvictWorkspace &w,
              cudaStream_t stream) {
  const Sides sides{const_cast<uint8_t *>(p.cache.keys),
                    const_cast<uint8_t *>(p.cache.values),
                    int(p.cache.key.entryBytes / sizeof(Word)),
                    int(p.cache.value.entryBytes / sizeof(Word))};
  const int chunk = std::min(kThreads, kThreads * kHeld /
                                           (sides.keyWords + sides.valueWords));
  const uint32_t chunksPerRow = (p.maxKept + chunk - 1) / chunk;
  const uint32_t blocks = p.count * p.cache.kvHeads * chunksPerRow;
  // The counter and the flags, cleared for this launch.
  if (cudaError_t e =
          cudaMemsetAsync(w.chunkCounter, 0,
                          reinterpret_cast<char *>(w.chunkRead + blocks) -
                              reinterpret_cast<char *>(w.chunkCounter),
                          stream))
    return cudaFailed("clearing the compaction's flags", e);
  compactKernel<Word>
      <<<blocks, kThreads, 0, stream>>>(p, w, sides, chunk, chunksPerRow);
  return Status::ok();
}

__global__ void storeHeadPositionsKernel(int32_t *positions, float *mass,
                                         uint64_t layerStride, uint32_t layers,
                                         uint32_t kvHeads, uint32_t pageSize,
                                         const int32_t *slots,
                                         const int32_t *rowPositions) {
  const int32_t slot = slots[blockIdx.x], value = rowPositions[blockIdx.x];
  const size_t page = size_t(slot / int32_t(pageSize));
  const uint32_t inPage = uint32_t(slot % int32_t(pageSize));
  for (uint32_t t = threadIdx.x; t < layers * kvHeads; t += blockDim.x) {
    const uint32_t layer = t / kvHeads, h = t % kvHeads;
    const size_t at =
        layer * layerStride + (page * kvHeads + h) * pageSize + inPage;
    positions[at] = value;
    if (mass)
      mass[at] = 0;
  }
}

Status launchWords(const EvictLaunch &p, const EvictWorkspace &w,
                   cudaStream_t stream) {
  switch (std::min(wordBytes(p.cache.key), wordBytes(p.cache.value))) {
  case 16:
    return launch<uint4>(p, w, stream);
  case 8:
    return launch<uint2>(p, w, stream);
  case 4:
    return launch<uint32_t>(p, w, stream);
  case 2:
    return launch<uint16_t>(p, w, stream);
  default:
    return launch<uint8_t>(p, w, stream);
  }
}

} // namespace

bool evictCompacts(const DeviceSideLayout &side) {
  // Entries of at most 1 KB: a chunk holds one entry of keys and values.
  return side.kind != DeviceSideLayout::Kind::Kivi &&
         side.entryBytes <= kThreads * kHeld / 2 && side.entryBytes > 0;
}

Status compactEntries(const EvictLaunch &p, cudaStream_t stream) {
  if (!p.count)
    return Status::ok();
  for (const DeviceSideLayout *layout : {&p.cache.key, &p.cache.value})
    if (!evictCompacts(*layout))
      return Status::error("the GPU compacts caches of one fixed-size entry "
                           "per token of at most 1 KB, not KIVI's groups");
  KVRT_RETURN_IF_ERROR(launchWords(p, evictWorkspace(p), stream));
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching the cache compaction", e);
  return Status::ok();
}

Status storeHeadPositions(int32_t *positions, float *mass, uint64_t layerStride,
                          uint32_t layers, uint32_t kvHeads, uint32_t pageSize,
                          const int32_t *slots, const int32_t *rowPositions,
                          uint32_t rows, cudaStream_t stream) {
  if (!rows || !layers)
    return Status::ok();
  storeHeadPositionsKernel<<<rows, 128, 0, stream>>>(
      positions, mass, layerStride, layers, kvHeads, pageSize, slots,
      rowPositions);
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("storing the evicting layers' positions", e);
  return Status::ok();
}

} // namespace kvrt::cuda
