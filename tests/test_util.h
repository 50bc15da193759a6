/* Shared helpers of the C tests: check macros, fresh random data, and the independent
 * fp64 brute-force reference that every assignment is compared with. */
#ifndef FKM_TEST_UTIL_H
#define FKM_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SKIP_CODE 77

extern int t_failures;
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
            t_failures++;                                                                  \
        }                                                                                  \
    } while (0)
/* Print the closing line and return the exit status. */
int t_finish(const char *name);

/* Seed from the clock (printed), so every run draws fresh data; FKM_TEST_SEED overrides. */
uint64_t t_seed(void);
/* n×d floats: `clusters` Gaussian blobs (centres in ±10, unit noise), from seed. */
float *t_blobs(int64_t n, int64_t d, int clusters, uint64_t seed);
/* n×d uniform floats in [-1, 1). */
float *t_uniform(int64_t n, int64_t d, uint64_t seed);

/* A test's temporary directory (the test fills it, e.g. with mkdtemp), and paths in it
 * (64 rotating static buffers). */
extern char t_dir[64];
char *t_path(const char *name);
/* xorshift64: the tests' own generator for data and bit patterns. */
uint64_t t_xs_next(uint64_t *s);

/* fp64 reference: for every row, the nearest centroid (ties to the lowest index), its
 * distance d1 and the second-best distance d2. Any output pointer may be NULL. */
void t_ref_assign(const float *x, int64_t n, int64_t d, const float *c, int64_t k, int32_t *label,
                  double *d1, double *d2);
/* The same for the largest inner product (metrics cosine and ip): d1, d2 = the two smallest
 * −x·c in fp64. */
void t_ref_assign_ip(const float *x, int64_t n, int64_t d, const float *c, int64_t k, int32_t *label,
                     double *d1, double *d2);
/* The largest L2 norm of the n rows of x (fp64). */
double t_max_row_norm(const float *x, int64_t n, int64_t d);
/* Scale each of the n rows of x to unit L2 length (fp64 norm, one rounding; zero rows stay). */
void t_normalize_rows(float *x, int64_t n, int64_t d);
/* 1 when the reference label of a row is unambiguous at relative gap `rel`:
 * (d2 - d1) > rel * max(d1, tiny). */
int t_clear_gap(double d1, double d2, double rel);

#endif
