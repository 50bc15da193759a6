/* Internal knobs of FlashAssign, for the GPU test and benchmark only (not part of the
 * kernel contract in fkm_kernels.h). */
#ifndef FKM_ASSIGN_INTERNAL_H
#define FKM_ASSIGN_INTERNAL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 0 = automatic (default), 1 = force the mma.sync kernel (v1), 2 = prefer the wgmma kernel (v2)
 * wherever it applies (16-bit rows, d <= 128); returns the previous setting. */
int fkm_k_assign_force_version(int v);
/* Which kernel the last fkm_k_assign call on this thread used (1 or 2; 0 before any call). */
int fkm_k_assign_last_version(void);

/* Exact mode: the workspace starts with an int32 count of the points whose label was
 * re-decided in fp64 by the last call (read it after the stream has synchronised). */
#define FKM_EXACT_WS_FLAG_COUNT_OFFSET 0

#ifdef __cplusplus
}
#endif
#endif
