/* The only door into the CUDA kernels: plain C, device pointers, one stream per call.
 * Every function returns 0 on success or a cudaError_t value (cudaGetErrorString names it);
 * launch errors are checked inside (cudaGetLastError after each launch).
 *
 * Storage: rows and centroids live on the device in the *compute type* of the mode,
 * row-major with a leading dimension (elements) that keeps every row 16-byte aligned:
 *   FKM_K_F16 / FKM_K_BF16: 16-bit elements, ld a multiple of 8;
 *   FKM_K_EXACT / FKM_K_TF32: float32 elements, ld a multiple of 4.
 * Padding columns [d, ld) are zero. Norms are ‖row‖² of the stored values, in float32. */
#ifndef FKM_KERNELS_H
#define FKM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *fkm_stream; /* = cudaStream_t, without the CUDA headers */

typedef enum {
    FKM_K_EXACT = 0, /* float32 rows; labels equal an fp64 reference wherever the best and
                        second-best distances differ by more than 1e-5 relative */
    FKM_K_TF32 = 1,  /* float32 rows, tf32 tensor cores */
    FKM_K_F16 = 2,   /* float16 rows, fp32 accumulation */
    FKM_K_BF16 = 3,  /* bfloat16 rows, fp32 accumulation */
} fkm_kmode;

/* Bytes of one stored element, and the leading dimension used for d columns. */
int fkm_k_elem_bytes(fkm_kmode mode);
int fkm_k_ld(fkm_kmode mode, int d);

/* Convert n×d float32 rows (host-side layout, dense, on the device) into the compute type
 * with leading dimension ld, zero padding. src and dst may not alias. */
int fkm_k_convert_rows(fkm_kmode mode, const float *src, int64_t n, int d, void *dst, int ld,
                       fkm_stream s);
/* Same from IEEE half rows (dense, on the device), for float16 files. */
int fkm_k_convert_rows_f16(fkm_kmode mode, const uint16_t *src, int64_t n, int d, void *dst,
                           int ld, fkm_stream s);
/* norms[i] = ‖row i‖² of stored rows (float32 accumulate). */
int fkm_k_row_norms(fkm_kmode mode, const void *x, int64_t n, int d, int ld, float *norms,
                    fkm_stream s);

/* What "nearest" means. L2: the smallest squared L2 distance. IP: the largest inner product
 * x·c (maximum inner product search; cosine similarity when rows and centroids are unit
 * vectors). */
typedef enum { FKM_KM_L2 = 0, FKM_KM_IP = 1 } fkm_kmetric;

typedef struct fkm_assign_args {
    fkm_kmode mode;
    fkm_kmetric metric;   /* FKM_KM_L2 (0) unless set */
    float ip_offset;      /* IP: min_dist = ip_offset − x·c (not clamped; 1 gives 1 − cos) */
    const void *x;        /* n rows, compute type, leading dimension ldx */
    int64_t n;
    int d, ldx;
    const float *x_norm;  /* n (not read for IP) */
    const void *c;        /* k centroids, compute type, leading dimension ldc */
    int64_t k;
    int ldc;
    const float *c_norm;  /* k (not read for IP) */
    int32_t *labels;      /* out: n, nearest centroid, ties to the lowest index */
    float *min_dist;      /* out: n, L2: squared distance to it (clamped at 0); IP: see ip_offset */
    void *workspace;      /* fkm_k_assign_workspace() bytes, or NULL when that is 0 */
} fkm_assign_args;

/* Device bytes the assign of n rows needs as workspace: exact mode (required there); fp16/bf16
 * with 64 < d <= 128, at most ~3 MB (optional: without it the wgmma kernel does not split its
 * last round of point tiles over all SMs). One workspace per assign in flight. */
size_t fkm_k_assign_workspace(fkm_kmode mode, int64_t n, int64_t k, int d);
/* FlashAssign: distances fused with an online argmin; never materialises n×k. */
int fkm_k_assign(const fkm_assign_args *a, fkm_stream s);

/* Sort-inverse update. stats (device, doubles) = [sums k×d | counts k | inertia 1] of the
 * n rows: sums and counts per label, inertia = Σ min_dist (in fp64). With weights (device, n
 * floats ≥ 0; NULL = all ones): sums of w·x, counts = Σ w, inertia = Σ w·min_dist.
 * Deterministic: two calls on the same inputs give bitwise equal stats. Overwrites stats. */
size_t fkm_k_update_workspace(int64_t n, int64_t k, int d);
int fkm_k_update(fkm_kmode mode, const void *x, int64_t n, int d, int ld, const int32_t *labels,
                 const float *min_dist, const float *weights, int64_t k, double *stats,
                 void *workspace, size_t workspace_bytes, fkm_stream s);

/* Finalize on the device: for every cluster with count > 0, c32[j] = sums[j] / count[j]
 * (float32, dense k×d), scaled to unit length when normalize is set (cosine; a zero mean stays
 * zero); empty clusters keep their centroid. out2[0] = max centroid shift (L2), out2[1] =
 * number of empty clusters (as a double). out2 is a device pointer. With c non-null, also
 * the new centroids in mode's compute type (leading dimension ldc) and their norms into
 * cnorm, bit for bit what fkm_k_convert_rows and fkm_k_row_norms of c32 would store. */
int fkm_k_finalize(const double *stats, int64_t k, int d, int normalize, float *c32, double *out2,
                   fkm_kmode mode, void *c, int ldc, float *cnorm, fkm_stream s);

#ifdef __cplusplus
}
#endif
#endif
