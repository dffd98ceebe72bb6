#!/usr/bin/env python3
"""Independent byte-level BPE reference in pure Python (needs only the `regex` module), in the
style of OpenAI's GPT-2 encoder.py: GPT-2 regex split, bytes_to_unicode, repeated merge of the
lowest-ranked pair. It handles tokenizer.json files with a ByteLevel pre-tokenizer, no
normalizer, and added tokens only as whole-text specials (none occur in WikiText).

Usage: bpe_pyref.py TOKENIZER_DIR TEXT_FILE [OUT.bin]
Prints: count, sha256 of the ids as little-endian int32, and the first 16 ids.
"""
import hashlib
import json
import struct
import sys

import regex

PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def main():
    tj = json.load(open(sys.argv[1] + "/tokenizer.json", encoding="utf-8"))
    m = tj["model"]
    vocab = m["vocab"]
    ranks = {}
    for i, mg in enumerate(m["merges"]):
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        ranks[(a, b)] = i
    b2u = bytes_to_unicode()
    text = open(sys.argv[2], encoding="utf-8", newline="").read()
    cache, ids = {}, []
    for w in PAT.findall(text):
        if w not in cache:
            word = [b2u[b] for b in w.encode("utf-8")]
            while len(word) > 1:
                pairs = [(ranks.get((word[i], word[i + 1]), 1 << 60), i) for i in range(len(word) - 1)]
                r, _ = min(pairs)
                if r == 1 << 60:
                    break
                best = min(pairs)[0]
                # merge every occurrence of the best pair, left to right
                bp = next((word[i], word[i + 1]) for (rr, i) in pairs if rr == best)
                out, i = [], 0
                while i < len(word):
                    if i + 1 < len(word) and (word[i], word[i + 1]) == bp:
                        out.append(word[i] + word[i + 1])
                        i += 2
                    else:
                        out.append(word[i])
                        i += 1
                word = out
            cache[w] = [vocab[t] for t in word]
        ids.extend(cache[w])
    raw = struct.pack("<%di" % len(ids), *ids)
    print(len(ids), hashlib.sha256(raw).hexdigest(), ids[:16])
    if len(sys.argv) > 3:
        open(sys.argv[3], "wb").write(raw)


if __name__ == "__main__":
    main()
