//===- HostDevice.h - Functions both sides compile --------------*- C++ -*-===//
//
// KVRT_HOST_DEVICE marks an inline function that nvcc compiles for the
// device and the host (where the plain C++ compiler sees it too), so the
// host's planning and tests share the kernels' arithmetic.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_SUPPORT_HOSTDEVICE_H
#define KVRT_SUPPORT_HOSTDEVICE_H

#ifdef __CUDACC__
#define KVRT_HOST_DEVICE __host__ __device__
#else
#define KVRT_HOST_DEVICE
#endif

#endif // KVRT_SUPPORT_HOSTDEVICE_H
