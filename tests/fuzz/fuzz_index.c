/* libFuzzer target: any byte string as model.safetensors.index.json of a sharded folder.
 * The folder is made once per process (under TMPDIR): two small valid shards; a third shard
 * outside the folder reached through link.safetensors (the HuggingFace cache layout, which
 * is accepted); and links that must be refused: dangling.safetensors, loop.safetensors,
 * fifo.safetensors (-> a FIFO), dir.safetensors (-> a folder), zero.safetensors
 * (-> /dev/zero). So index entries can name present, missing, escaping, aliased and
 * non-regular shards. cq_st_open must return a status and a one-line message, or a model whose
 * every tensor comes from one of the three regular shards and whose tensor set is exactly the
 * named shards' union. Built with libFuzzer (CQ_FUZZ=ON) or replay_main.c (ctest). */
#include "cquant/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[512], dir[600], index_path[700];

static int put(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* One F32 tensor NAME of shape [2]. */
static int put_shard(const char *folder, const char *file, const char *name)
{
    char hdr[256], path[1024];
    int h = snprintf(hdr, sizeof hdr,
                     "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", name);
    while (h % 8)
        hdr[h++] = ' ';
    unsigned char buf[8 + 256 + 8] = {0};
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, hdr, (size_t)h);
    snprintf(path, sizeof path, "%s/%s", folder, file);
    return put(path, buf, 8 + (size_t)h + 8);
}

static void cleanup(void)
{
    const char *files[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                           "link.safetensors", "dangling.safetensors", "loop.safetensors",
                           "fifo.safetensors", "dir.safetensors", "zero.safetensors",
                           "model.safetensors.index.json"};
    char p[1024];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    snprintf(p, sizeof p, "%s/outside.safetensors", root);
    unlink(p);
    snprintf(p, sizeof p, "%s/fifo", root);
    unlink(p);
    snprintf(p, sizeof p, "%s/sub", root);
    rmdir(p);
    rmdir(root);
}

static int setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/cqfuzz-index.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        return -1;
    snprintf(dir, sizeof dir, "%s/m", root);
    snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
    atexit(cleanup);
    char p[1024];
    snprintf(p, sizeof p, "%s/fifo", root);
    if (mkdir(dir, 0700) != 0 || mkfifo(p, 0600) != 0 ||
        put_shard(dir, "model-00001-of-00002.safetensors", "model.embed_tokens.weight") ||
        put_shard(dir, "model-00002-of-00002.safetensors", "model.norm.weight") ||
        put_shard(root, "outside.safetensors", "lm_head.weight"))
        return -1;
    snprintf(p, sizeof p, "%s/sub", root);
    if (mkdir(p, 0700) != 0)
        return -1;
    const char *links[][2] = {{"../outside.safetensors", "link"}, {"../missing", "dangling"},
                              {"loop.safetensors", "loop"},      {"../fifo", "fifo"},
                              {"../sub", "dir"},                 {"/dev/zero", "zero"}};
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        snprintf(p, sizeof p, "%s/%s.safetensors", dir, links[i][1]);
        if (symlink(links[i][0], p) != 0)
            return -1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready = 0;
    if (!ready) {
        if (setup() != 0) {
            perror("fuzz_index: setup");
            abort();
        }
        ready = 1;
    }
    if (put(index_path, data, size) != 0)
        abort();
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    int rc = cq_st_open(&m, dir, &err);
    if (rc != CQ_OK) {
        if (m || err.code != rc || !err.msg[0] || strchr(err.msg, '\n'))
            abort();
        return 0;
    }
    /* Accepted: only the two shards and the link to the regular file outside can hold
     * tensors (one each), and the index must list every tensor of each shard it names. */
    size_t n = cq_st_count(m);
    if (n < 1 || n > 3 || cq_st_shard_count(m) != n)
        abort();
    for (size_t i = 0; i < n; i++) {
        const cq_st_tensor *t = cq_st_at(m, i);
        const char *base = strrchr(t->file, '/');
        if (strncmp(t->file, dir, strlen(dir)) != 0 || !base ||
            (strncmp(base + 1, "model-0000", 10) != 0 &&
             strcmp(base + 1, "link.safetensors") != 0) ||
            cq_st_find(m, t->name) != t || t->nbytes != 8)
            abort();
    }
    cq_st_close(m);
    return 0;
}
