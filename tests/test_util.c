#include "test_util.h"

#include <math.h>
#include <string.h>
#include <time.h>

int t_failures = 0;
char t_dir[64];

char *t_path(const char *name)
{
    static char buf[64][256];
    static int next = 0;
    char *p = buf[next++ % 64];
    snprintf(p, sizeof buf[0], "%s/%s", t_dir, name);
    return p;
}

uint64_t t_xs_next(uint64_t *s)
{
    uint64_t x = *s ? *s : 88172645463325252ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

int t_finish(const char *name)
{
    if (t_failures) {
        printf("%s: %d checks failed\n", name, t_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

uint64_t t_seed(void)
{
    const char *s = getenv("FKM_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    printf("test seed %llu (FKM_TEST_SEED=%llu reproduces)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    return seed;
}

static uint64_t t_next(uint64_t *s)
{ /* xorshift64*: the tests' own generator, independent of src/rng.h */
    uint64_t x = *s ? *s : 0x2545F4914F6CDD1DULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double t_unit(uint64_t *s) { return (double)(t_next(s) >> 11) / 9007199254740992.0; }

float *t_uniform(int64_t n, int64_t d, uint64_t seed)
{
    float *x = malloc((size_t)(n * d + 1) * sizeof *x);
    uint64_t s = seed * 2654435761ULL + 1;
    for (int64_t i = 0; i < n * d; i++) x[i] = (float)(2.0 * t_unit(&s) - 1.0);
    return x;
}

float *t_blobs(int64_t n, int64_t d, int clusters, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 7;
    double *ctr = malloc((size_t)(clusters * d) * sizeof *ctr);
    for (int64_t i = 0; i < clusters * d; i++) ctr[i] = 20.0 * t_unit(&s) - 10.0;
    float *x = malloc((size_t)(n * d + 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(t_next(&s) % (uint64_t)clusters);
        for (int64_t j = 0; j < d; j++) {
            double u1 = t_unit(&s) + 1e-300, u2 = t_unit(&s);
            x[i * d + j] = (float)(ctr[c * d + j] + sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
        }
    }
    free(ctr);
    return x;
}

/* The best and second-best score of every row over the k centroids, ties to the lowest
 * index: the squared L2 distance, or (ip) −x·c. */
static void ref_assign(const float *x, int64_t n, int64_t d, const float *c, int64_t k, int ip,
                       int32_t *label, double *d1, double *d2)
{
    for (int64_t i = 0; i < n; i++) {
        double best = INFINITY, second = INFINITY;
        int32_t bi = 0;
        for (int64_t j = 0; j < k; j++) {
            double acc = 0;
            for (int64_t t = 0; t < d; t++) {
                const double xv = x[i * d + t], cv = c[j * d + t];
                acc += ip ? -xv * cv : (xv - cv) * (xv - cv);
            }
            if (acc < best) {
                second = best;
                best = acc;
                bi = (int32_t)j;
            } else if (acc < second) {
                second = acc;
            }
        }
        if (label) label[i] = bi;
        if (d1) d1[i] = best;
        if (d2) d2[i] = second;
    }
}

void t_ref_assign(const float *x, int64_t n, int64_t d, const float *c, int64_t k, int32_t *label,
                  double *d1, double *d2)
{
    ref_assign(x, n, d, c, k, 0, label, d1, d2);
}

void t_ref_assign_ip(const float *x, int64_t n, int64_t d, const float *c, int64_t k, int32_t *label,
                     double *d1, double *d2)
{
    ref_assign(x, n, d, c, k, 1, label, d1, d2);
}

double t_max_row_norm(const float *x, int64_t n, int64_t d)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double n2 = 0;
        for (int64_t t = 0; t < d; t++) n2 += (double)x[i * d + t] * x[i * d + t];
        m = fmax(m, sqrt(n2));
    }
    return m;
}

void t_normalize_rows(float *x, int64_t n, int64_t d)
{
    for (int64_t i = 0; i < n; i++) {
        double n2 = 0;
        for (int64_t t = 0; t < d; t++) n2 += (double)x[i * d + t] * x[i * d + t];
        const double inv = n2 > 0 ? 1.0 / sqrt(n2) : 1.0;
        for (int64_t t = 0; t < d; t++) x[i * d + t] = (float)(x[i * d + t] * inv);
    }
}

int t_clear_gap(double d1, double d2, double rel)
{
    double scale = d1 > 1e-30 ? d1 : 1e-30;
    return (d2 - d1) > rel * scale;
}
