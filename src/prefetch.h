/* Read-ahead of a row source: a reader thread fills a ring of buffers with consecutive chunks
 * while the consumer works on earlier ones (the file residency, on every backend). */
#ifndef FKM_PREFETCH_H
#define FKM_PREFETCH_H

#include "rowsrc.h"

#ifdef __cplusplus
extern "C" { /* the CUDA backend reads its file residency through it */
#endif

typedef struct fkm_prefetch fkm_prefetch;
/* Buffer allocation (pinned host memory for the GPU); NULL fns mean malloc/free. */
typedef void *(*fkm_alloc_fn)(size_t bytes, void *user);
typedef void (*fkm_free_fn)(void *p, void *user);

int fkm_prefetch_create(fkm_prefetch **pf, const fkm_rowsrc *src, int64_t chunk_rows, int nbuf,
                        fkm_alloc_fn alloc, fkm_free_fn release, void *user, fkm_error *err);
/* Start a pass over all rows, in order (abandoning the current one, if any: no buffer of it
 * may still be in use). */
void fkm_prefetch_begin(fkm_prefetch *pf);
/* The next chunk of the pass (waits for it). Returns FKM_OK with *m > 0 and *rows, *r0 set;
 * FKM_OK with *m == 0 at the end of the pass; an error status, err set, when a read failed
 * (the source's message, followed by the rows it was reading; the pass ends at that chunk:
 * no read is started after it until the next fkm_prefetch_begin, and that chunk is not
 * released). *wait_ms (may be NULL) gets the time spent waiting. */
int fkm_prefetch_next(fkm_prefetch *pf, const void **rows, int64_t *r0, int64_t *m, double *wait_ms,
                      fkm_error *err);
/* The consumer is done with the chunk that the last fkm_prefetch_next returned: its buffer
 * goes back to the reader (so anything still reading the buffer, a host-to-device copy,
 * must have finished). */
void fkm_prefetch_release(fkm_prefetch *pf);
void fkm_prefetch_destroy(fkm_prefetch *pf);

#ifdef __cplusplus
}
#endif
#endif
