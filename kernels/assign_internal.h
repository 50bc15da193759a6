/* Internal knobs of FlashAssign, for the GPU test and benchmark only (not part of the
 * kernel contract in fkm_kernels.h). */
#ifndef FKM_ASSIGN_INTERNAL_H
#define FKM_ASSIGN_INTERNAL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 0 = automatic (default), 1 = force the mma.sync kernel (v1), 2 = prefer the wgmma kernels
 * wherever they apply (16-bit rows, d <= 128, a compute capability 9.0 device), in the automatic
 * configuration; 3..53 = that wgmma configuration (v2 family 3..15, v3 family 16..53; see
 * kernels/assign.cu), where it applies, else the automatic one. Returns the previous setting.
 * The environment variable FKM_ASSIGN_AUTO_VERSION=N (read once) makes N the automatic choice
 * wherever it applies (for testing a candidate through tests that use the automatic choice). */
int fkm_k_assign_force_version(int v);
/* Which kernel version the last fkm_k_assign call on this thread used (1, or the wgmma
 * configuration's number; 0 before any call). */
int fkm_k_assign_last_version(void);
/* The SM clock stamps of block 0's two consumer warpgroups, per step, from the last launch of
 * a TRACE version (42, 43): dst holds 2 x max_steps x 5 values ([consumer][step][point];
 * points: before the stage wait, stage full, wgmma committed, wgmma complete, stage released).
 * Returns the steps the kernel keeps (1024), clearing them, or a negative CUDA error. */
int fkm_k_assign_v3_trace(unsigned long long *dst, int max_steps);

/* Exact mode: the workspace starts with an int32 count of the points whose label was
 * re-decided in fp64 by the last call (read it after the stream has synchronised). */
#define FKM_EXACT_WS_FLAG_COUNT_OFFSET 0

#ifdef __cplusplus
}
#endif
#endif
