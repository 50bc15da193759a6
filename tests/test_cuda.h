/* Check macros of the GPU tests: a failed call ends the test at once, naming the call, the file
 * and the line. CK: a CUDA runtime call or a kernel-layer call returning a cudaError_t value;
 * OK: an fkm call returning a status, with the fkm_error `err` in scope. And t_to_f16: rows
 * as the float16 bits (round to nearest even) that an f16 source holds. */
#ifndef FKM_TEST_CUDA_H
#define FKM_TEST_CUDA_H

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#define CK(call)                                                                              \
    do {                                                                                      \
        cudaError_t e_ = (cudaError_t)(call);                                                 \
        if (e_ != cudaSuccess) {                                                              \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,         \
                    cudaGetErrorName(e_), cudaGetErrorString(e_));                            \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

#define OK(call)                                                                              \
    do {                                                                                      \
        int s_ = (call);                                                                      \
        if (s_ != FKM_OK) {                                                                   \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, err.msg);    \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

static inline std::vector<uint16_t> t_to_f16(const float *x, int64_t count)
{
    std::vector<uint16_t> h((size_t)count);
    for (int64_t i = 0; i < count; i++) {
        const __half v = __float2half_rn(x[i]);
        memcpy(&h[(size_t)i], &v, 2);
    }
    return h;
}

#endif
