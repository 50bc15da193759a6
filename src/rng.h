/* Counter-based random numbers: every value is a pure function of (seed, stream, index),
 * so results do not depend on how rows are split over ranks or threads. */
#ifndef FKM_RNG_H
#define FKM_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t fkm_mix64(uint64_t z)
{ /* splitmix64 finaliser */
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 64 random bits for (seed, stream, i). */
static inline uint64_t fkm_rand64(uint64_t seed, uint64_t stream, uint64_t i)
{
    return fkm_mix64(fkm_mix64(seed ^ fkm_mix64(stream)) + i);
}

/* Uniform double in [0, 1). */
static inline double fkm_rand_unit(uint64_t seed, uint64_t stream, uint64_t i)
{
    return (double)(fkm_rand64(seed, stream, i) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box-Muller on two counter draws). */
static inline double fkm_rand_normal(uint64_t seed, uint64_t stream, uint64_t i)
{
    double u1 = fkm_rand_unit(seed, stream, 2 * i), u2 = fkm_rand_unit(seed, stream, 2 * i + 1);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Uniform integer in [0, n), n > 0 (bias below 2^-40 for n < 2^24; negligible otherwise
 * for our uses, which only need reproducibility). */
static inline uint64_t fkm_rand_below(uint64_t seed, uint64_t stream, uint64_t i, uint64_t n)
{
    return fkm_rand64(seed, stream, i) % n;
}

/* Streams, so that no two uses of the seed draw the same numbers. */
enum {
    FKM_STREAM_INIT = 1,
    FKM_STREAM_SPLIT = 2,
    FKM_STREAM_GEN_CENTER = 3,
    FKM_STREAM_GEN_LABEL = 4,
    FKM_STREAM_GEN_NOISE = 5,
    FKM_STREAM_INIT_SAMPLE = 6, /* the rows k-means++ runs on (--init-sample) */
    FKM_STREAM_KMPP = 7,        /* k-means++ draws */
    FKM_STREAM_KMPAR = 8,       /* k-means|| draws (one per global row and round) */
    FKM_STREAM_TRAIN_SAMPLE = 9, /* the rows trained on (--max-points-per-centroid) */
};

#endif
