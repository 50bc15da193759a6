/* IEEE 754 binary16 ("half") <-> float32 conversion in plain C, bit-exact:
 * half -> float is exact (every half is a float), including subnormals, ±inf and NaN;
 * float -> half rounds to nearest, ties to even, overflows to ±inf, keeps NaN a NaN.
 * Used by the HDF5 reader (float16 datasets), `fkm gen`, and the CPU backend. */
#ifndef FKM_HALF_H
#define FKM_HALF_H

#include <stdint.h>
#include <string.h>

static inline float fkm_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    float f;
    if (exp == 0x1f) { /* inf (man == 0) or NaN (payload kept in the top mantissa bits) */
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) { /* normal: rebias the exponent from 15 to 127 */
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) { /* ±0 */
        bits = sign;
    } else { /* subnormal: man × 2^-24, exact in float since man < 2^10 */
        f = (float)man * 5.9604644775390625e-8f; /* 2^-24 */
        memcpy(&bits, &f, sizeof bits);
        bits |= sign;
    }
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t fkm_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;

    if (ax >= 0x7f800000u) { /* inf, or NaN: stay a (quiet) NaN, keep the top payload bits */
        if (ax == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x47800000u) /* ≥ 2^16: beyond the largest half even after rounding */
        return (uint16_t)(sign | 0x7c00u);

    int32_t e = (int32_t)(ax >> 23) - 127; /* unbiased float exponent */
    uint32_t m = ax & 0x7fffffu;
    if (e >= -14) { /* normal half: drop 13 mantissa bits with round-to-nearest-even; a carry
                     * out of the mantissa bumps the exponent, up to inf (65520 -> inf) */
        uint32_t h = ((uint32_t)(e + 15) << 10) | (m >> 13);
        uint32_t rem = m & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    /* subnormal half (or zero): value = M × 2^(e-23) with M the 24-bit significand, and the
     * half mantissa is round(value / 2^-24) = round(M >> s) with s = -(e+1) ≥ 14 */
    if ((ax >> 23) == 0 || e < -25) return sign; /* below 2^-25 (a tie at most): rounds to ±0 */
    uint32_t M = m | 0x800000u;
    int s = -(e + 1);
    uint32_t h = M >> s;
    uint32_t rem = M & ((1u << s) - 1u), half = 1u << (s - 1);
    if (rem > half || (rem == half && (h & 1u))) h++; /* may carry into the smallest normal */
    return (uint16_t)(sign | h);
}

#endif
