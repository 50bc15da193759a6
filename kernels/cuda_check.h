/* Checked CUDA calls for the host glue (backend_cuda.cu) and the kernels.
 *
 * Host glue (functions returning an fkm_status and filling an fkm_error):
 *     FKM_CUDA_TRY(err, cudaMemcpyAsync(...));
 * formats `file:line: cudaErrorName: message (call)` into err with fkm_fail() and returns
 * FKM_ERUNTIME, or FKM_ENOMEM for cudaErrorMemoryAllocation. Kernel entry points (which
 * return a cudaError_t as int, see fkm_kernels.h) use FKM_K_TRY / FKM_K_LAUNCHED. */
#ifndef FKM_CUDA_CHECK_H
#define FKM_CUDA_CHECK_H

#include <cuda_runtime.h>
#include <stddef.h>

#include "util.h"

static inline int fkm_cuda_fail(fkm_error *err, cudaError_t e, const char *file, int line,
                                const char *call)
{
    int status = e == cudaErrorMemoryAllocation ? FKM_ENOMEM : FKM_ERUNTIME;
    return fkm_fail(err, status, "%s:%d: %s: %s (%s)", file, line, cudaGetErrorName(e),
                    cudaGetErrorString(e), call);
}

/* cudaMalloc with an actionable out-of-memory message: how many MiB were needed, how many
 * are free, and what helps. *p is NULL after a zero-byte request. */
static inline int fkm_cuda_malloc_at(void **p, size_t bytes, const char *what, fkm_error *err,
                                     const char *file, int line)
{
    *p = NULL;
    if (bytes == 0) return FKM_OK;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaSuccess) return FKM_OK;
    *p = NULL;
    if (e != cudaErrorMemoryAllocation) return fkm_cuda_fail(err, e, file, line, "cudaMalloc");
    (void)cudaGetLastError(); /* not sticky: clear it */
    size_t freeb = 0, total = 0;
    int dev = -1;
    cudaMemGetInfo(&freeb, &total);
    cudaGetDevice(&dev);
    const double mib = 1024.0 * 1024.0;
    return fkm_fail(err, FKM_ENOMEM,
                    "%s:%d: out of device memory: %s needs %.1f MiB but only %.1f MiB of %.1f MiB "
                    "are free on CUDA device %d; use `--residency host` or run more ranks so each "
                    "holds fewer rows",
                    file, line, what, (double)bytes / mib, (double)freeb / mib,
                    (double)total / mib, dev);
}
#define fkm_cuda_malloc(p, bytes, what, err) \
    fkm_cuda_malloc_at((void **)(p), (bytes), (what), (err), __FILE__, __LINE__)

#define FKM_CUDA_TRY(err, call)                                                    \
    do {                                                                           \
        cudaError_t e_ = (cudaError_t)(call);                                      \
        if (e_ != cudaSuccess) return fkm_cuda_fail((err), e_, __FILE__, __LINE__, #call); \
    } while (0)

/* Inside the kernel entry points: return the cudaError_t as int. */
#define FKM_K_TRY(call)                                                            \
    do {                                                                           \
        cudaError_t e_ = (cudaError_t)(call);                                      \
        if (e_ != cudaSuccess) return (int)e_;                                     \
    } while (0)
#define FKM_K_LAUNCHED() FKM_K_TRY(cudaGetLastError())

#endif
