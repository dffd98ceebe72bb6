/* Whole-file reads of small inputs (config.json, tokenizer.json, other JSON documents): the one
 * place that opens them, so every reader treats FIFOs, folders and huge files the same way. */
#ifndef CQUANT_FILE_H
#define CQUANT_FILE_H

#include "cquant/error.h"

#include <stddef.h>

enum { CQ_READ_MISSING_OK = 1 }; /* a missing file is CQ_OK with *data NULL, *len 0 */

/* Read all of `path` into a NUL-terminated heap buffer (*data; *len bytes, the NUL not
 * counted; free() it). The open never blocks (O_NONBLOCK: a FIFO without a writer is refused,
 * not waited for) and only regular files are read. Errors, each naming the file:
 * "'PATH': cannot open: ..." (CQ_E_IO), "'PATH': not a regular file" (CQ_E_IO),
 * "'PATH': N bytes is over the M-byte limit" (CQ_E_FORMAT; checked before reading and while
 * reading, should the file grow), "'PATH': read failed" (CQ_E_IO), CQ_E_NOMEM. */
int cq_read_file(const char *path, size_t max_bytes, unsigned flags, char **data, size_t *len,
                 cq_error *err);

#endif
