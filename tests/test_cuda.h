/* Check macros of the GPU tests: a failed call ends the test at once, naming the call, the file
 * and the line. CK: a CUDA runtime call or a kernel-layer call returning a cudaError_t value;
 * OK: an fkm call returning a status, with the fkm_error `err` in scope. */
#ifndef FKM_TEST_CUDA_H
#define FKM_TEST_CUDA_H

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif
