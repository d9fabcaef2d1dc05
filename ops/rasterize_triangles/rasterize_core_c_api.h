/* A small C interface to the TensorFlow-free core, for ctypes: host arrays
 * in, host arrays out, the layouts of rasterize_triangles.h. The same source
 * (rasterize_core_c_api.cc) is built twice by `make core-libs`: with g++
 * into build/rasterize_core/librasterize_core_cpu.so (one thread) and with
 * nvcc -DMGC_CORE_CUDA=1 into librasterize_core_cuda.so (copies to the GPU
 * and back). tests/rasterizer_backends.py loads them; neither needs
 * TensorFlow.
 *
 * Every function returns 0 on success, else nonzero with the reason in
 * mgc_core_last_error() (per thread, valid until the next call). */
#ifndef MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_CORE_C_API_H_
#define MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_CORE_C_API_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "cpu" or "cuda". */
const char* mgc_core_backend(void);

/* Devices the library can run on: 1 for the CPU library; the CUDA device
 * count for the CUDA library (0 with the reason in mgc_core_last_error()
 * when there is no device or driver). */
int mgc_core_device_count(void);

const char* mgc_core_last_error(void);

int mgc_core_rasterize(const float* clip_vertices, const int32_t* triangles,
                       int64_t batch, int64_t num_vertices,
                       int64_t num_triangles, int32_t width, int32_t height,
                       float* barycentrics, int32_t* triangle_ids,
                       float* z_buffer);

int mgc_core_rasterize_grad(const float* clip_vertices,
                            const int32_t* triangles, int64_t batch,
                            int64_t num_vertices, int64_t num_triangles,
                            int32_t width, int32_t height,
                            const float* barycentrics,
                            const int32_t* triangle_ids,
                            const float* d_barycentrics,
                            float* d_clip_vertices);

/* Median milliseconds of `repeats` forward and backward passes on inputs
 * already where the backend works (device memory for CUDA, timed with CUDA
 * events; no transfers), after one untimed pass of each. For
 * experiments/bench_rasterizer_cores.py. */
int mgc_core_benchmark(const float* clip_vertices, const int32_t* triangles,
                       int64_t batch, int64_t num_vertices,
                       int64_t num_triangles, int32_t width, int32_t height,
                       const float* d_barycentrics, int32_t repeats,
                       double* forward_ms, double* backward_ms);

#ifdef __cplusplus
}
#endif

#endif /* MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_CORE_C_API_H_ */
