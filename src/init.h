/* Initial centroids (see init.c). */
#ifndef FKM_INIT_H
#define FKM_INIT_H

#include "backend.h"
#include "fkm.h"
#include "rowsrc.h"

/* k distinct row ids of [0, n), a pure function of (n, k, seed), in draw order. */
int fkm_sample_rows(int64_t n, int64_t k, uint64_t seed, int64_t *ids, fkm_error *err);
/* The same from another random stream (rng.h), for samples that must not repeat the init's. */
int fkm_sample_rows_stream(int64_t n, int64_t k, uint64_t seed, uint64_t stream, int64_t *ids,
                           fkm_error *err);
/* Copy the rows among ids that fall in this rank's rows [row0, row0 + src->n) into out
 * (k×d, zero elsewhere): a sum over ranks then gives every rank all k rows. */
int fkm_init_from_rows(const int64_t *ids, int64_t k, const fkm_rowsrc *src, int64_t row0,
                       double *out, fkm_error *err);

/* Every rank gets the global rows ids[0..m) (any order, numbered as src's rows with this
 * rank's first at row0) as float32 into out (m×d, in ids order): each rank copies the rows it
 * holds and a sum over ranks gives every rank all of them, exactly (each row is non-zero on
 * one rank only). In blocks of at most 32 MiB of fp64. Collective: every rank passes the
 * same ids; every rank returns the same status. */
struct fkm_comm;
int fkm_gather_rows(struct fkm_comm *c, const fkm_rowsrc *src, int64_t row0, const int64_t *ids,
                    int64_t m, float *out, fkm_error *err);

/* k-means|| (Bahmani et al., 2012), collective over the ranks: one row drawn uniformly, then
 * `rounds` rounds in which every row g (global number among the n rows) joins the candidates
 * with probability min(1, ell·w(g)·D²(g)/φ) (D² from be->nearest, φ = Σ w·D², w the row
 * weights of src's rows, or 1 when w is NULL), the draw a counter uniform keyed by (seed,
 * round, g), so the candidates do not depend on the number of ranks; candidates are gathered
 * in global row order. Each candidate is weighted by the weight of the rows nearest to it,
 * and weighted greedy k-means++ (kmeanspp.h) picks k of them into out (k×d). With fewer than
 * k candidates, rows drawn uniformly (not already candidates) fill up. verbose ≥ 2 prints the
 * candidate count on rank 0. */
int fkm_kmeans_par(struct fkm_comm *c, fkm_backend *be, const fkm_rowsrc *src, const float *w,
                   int64_t row0, int64_t n, int64_t k, uint64_t seed, int rounds, double ell,
                   int verbose, float *out, fkm_error *err);

#endif
