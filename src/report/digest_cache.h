/* Cache of input digests keyed by a file's stat data (digest_cache.c says when an entry is
 * trusted). Location: $CQ_DIGEST_CACHE (a file; "off" disables), else
 * $XDG_CACHE_HOME/cquant/digests, else ~/.cache/cquant/digests. Never fails: a cache that
 * cannot be read or written just saves nothing. Not thread-safe: one owner at a time. */
#ifndef CQ_REPORT_DIGEST_CACHE_H
#define CQ_REPORT_DIGEST_CACHE_H

#include <stdint.h>
#include <sys/stat.h>

typedef struct cq_digest_cache cq_digest_cache;

/* Load the cache (NULL only when out of memory). */
cq_digest_cache *cq_digest_cache_open(void);
/* 1 with digest and *bytes set when PATH's entry matches its current stat data, else 0. *st
 * gets the stat data it compared (zeroed when the cache is off or PATH is not a regular file):
 * what cq_digest_cache_put needs after a miss. */
int cq_digest_cache_get(cq_digest_cache *c, const char *path, uint8_t digest[32],
                        int64_t *bytes, struct stat *st);
/* Record PATH's digest, computed from the file as BEFORE describes it (stat taken before the
 * hash): skipped when the file changed since, or changed too recently to trust. A zeroed BEFORE
 * stores nothing. */
void cq_digest_cache_put(cq_digest_cache *c, const char *path, const struct stat *before,
                         const uint8_t digest[32]);
/* Write the cache back when something was added, and free it. NULL-safe. */
void cq_digest_cache_close(cq_digest_cache *c);

#endif
