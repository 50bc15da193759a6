#include "prefetch.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    void *buf;
    int64_t r0, m;
    int ready; /* filled and not yet consumed */
    int status;
    fkm_error err;
} slot;

struct fkm_prefetch {
    fkm_rowsrc src;
    int64_t chunk_rows, nchunks;
    int nbuf;
    slot *slots;
    fkm_free_fn release_fn;
    void *user;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t pass;        /* passes started */
    int64_t next_read;   /* the reader's next chunk of the current pass */
    int64_t next_use;    /* the consumer's next chunk */
    int quit;
};

/* " (read ahead: rows [r0, r0 + m) of this rank's shard)" after a failed read's message. */
static void append_rows(fkm_error *e, int64_t r0, int64_t m)
{
    const size_t len = strlen(e->msg);
    if (len < sizeof e->msg - 1)
        snprintf(e->msg + len, sizeof e->msg - len, " (read ahead: rows [%lld, %lld) of this rank's shard)",
                 (long long)r0, (long long)(r0 + m));
}

static void *reader(void *arg)
{
    fkm_prefetch *pf = arg;
    pthread_mutex_lock(&pf->mu);
    while (!pf->quit) {
        /* chunk next_read may be read when the slot's previous chunk has been released */
        if (pf->next_read >= pf->nchunks || pf->next_read - pf->next_use >= pf->nbuf) {
            pthread_cond_wait(&pf->cv, &pf->mu);
            continue;
        }
        int64_t c = pf->next_read, pass = pf->pass;
        slot *s = &pf->slots[c % pf->nbuf];
        pthread_mutex_unlock(&pf->mu);
        s->r0 = c * pf->chunk_rows;
        s->m = pf->src.n - s->r0 < pf->chunk_rows ? pf->src.n - s->r0 : pf->chunk_rows;
        fkm_error_clear(&s->err);
        s->status = pf->src.read(pf->src.ctx, s->r0, s->m, s->buf, &s->err);
        if (s->status) /* the consumer sees this message, on another thread: say which rows */
            append_rows(&s->err, s->r0, s->m);
        pthread_mutex_lock(&pf->mu);
        if (pass != pf->pass) continue; /* a new pass began meanwhile: this read is stale */
        s->ready = 1;
        /* after a failed read the pass ends there: the consumer stops at this chunk */
        pf->next_read = s->status ? pf->nchunks : c + 1;
        pthread_cond_broadcast(&pf->cv);
    }
    pthread_mutex_unlock(&pf->mu);
    return NULL;
}

int fkm_prefetch_create(fkm_prefetch **out, const fkm_rowsrc *src, int64_t chunk_rows, int nbuf,
                        fkm_alloc_fn alloc, fkm_free_fn release, void *user, fkm_error *err)
{
    *out = NULL;
    fkm_prefetch *pf = fkm_calloc(1, sizeof *pf, "the read-ahead", err);
    if (!pf) return FKM_ENOMEM;
    pf->src = *src;
    pf->chunk_rows = chunk_rows < 1 ? 1 : chunk_rows;
    pf->nchunks = (src->n + pf->chunk_rows - 1) / pf->chunk_rows;
    pf->nbuf = nbuf < 2 ? 2 : nbuf;
    pf->release_fn = release;
    pf->user = user;
    pf->next_read = pf->next_use = pf->nchunks; /* idle until the first pass */
    pf->slots = fkm_calloc((size_t)pf->nbuf, sizeof(slot), "the read-ahead", err);
    if (!pf->slots) {
        free(pf);
        return FKM_ENOMEM;
    }
    size_t bytes = (size_t)pf->chunk_rows * fkm_rowsrc_row_bytes(src);
    for (int i = 0; i < pf->nbuf; i++) {
        pf->slots[i].buf = alloc ? alloc(bytes, user) : malloc(bytes ? bytes : 1);
        if (!pf->slots[i].buf) {
            fkm_prefetch_destroy(pf);
            return fkm_fail(err, FKM_ENOMEM, "out of host memory: %d read-ahead buffers of %.1f MiB "
                            "(a smaller --chunk-rows helps)", nbuf, (double)bytes / (1 << 20));
        }
    }
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    if (pthread_create(&pf->thread, NULL, reader, pf) != 0) {
        pthread_mutex_destroy(&pf->mu);
        pthread_cond_destroy(&pf->cv);
        pf->thread = 0;
        fkm_prefetch_destroy(pf);
        return fkm_fail(err, FKM_ERUNTIME, "cannot start the reader thread");
    }
    *out = pf;
    return FKM_OK;
}

void fkm_prefetch_begin(fkm_prefetch *pf)
{
    pthread_mutex_lock(&pf->mu);
    for (int i = 0; i < pf->nbuf; i++) pf->slots[i].ready = 0;
    pf->next_read = pf->next_use = 0;
    pf->pass++;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
}

int fkm_prefetch_next(fkm_prefetch *pf, const void **rows, int64_t *r0, int64_t *m, double *wait_ms,
                      fkm_error *err)
{
    double t0 = fkm_now_ms();
    *m = 0;
    pthread_mutex_lock(&pf->mu);
    if (pf->next_use >= pf->nchunks) {
        pthread_mutex_unlock(&pf->mu);
        if (wait_ms) *wait_ms = 0;
        return FKM_OK;
    }
    slot *s = &pf->slots[pf->next_use % pf->nbuf];
    while (!s->ready) pthread_cond_wait(&pf->cv, &pf->mu);
    pthread_mutex_unlock(&pf->mu);
    if (wait_ms) *wait_ms = fkm_now_ms() - t0;
    if (s->status) {
        *err = s->err;
        return s->status;
    }
    *rows = s->buf;
    *r0 = s->r0;
    *m = s->m;
    return FKM_OK;
}

void fkm_prefetch_release(fkm_prefetch *pf)
{
    pthread_mutex_lock(&pf->mu);
    pf->slots[pf->next_use % pf->nbuf].ready = 0;
    pf->next_use++;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
}

void fkm_prefetch_destroy(fkm_prefetch *pf)
{
    if (!pf) return;
    if (pf->thread) {
        pthread_mutex_lock(&pf->mu);
        pf->quit = 1;
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
        pthread_join(pf->thread, NULL);
        pthread_mutex_destroy(&pf->mu);
        pthread_cond_destroy(&pf->cv);
    }
    for (int i = 0; i < pf->nbuf; i++) {
        if (!pf->slots[i].buf) continue;
        if (pf->release_fn)
            pf->release_fn(pf->slots[i].buf, pf->user);
        else
            free(pf->slots[i].buf);
    }
    free(pf->slots);
    free(pf);
}
