#!/usr/bin/env python3
"""Independent byte-level BPE reference in pure Python (needs only the `regex` module), in the
style of OpenAI's GPT-2 encoder.py: GPT-2 regex split, bytes_to_unicode, repeated merge of the
lowest-ranked pair. It handles tokenizer.json files with a ByteLevel pre-tokenizer, no
normalizer, and added tokens only as whole-text specials (none occur in WikiText).

Usage: bpe_pyref.py TOKENIZER_DIR TEXT_FILE [PROBES.json]
Prints one JSON object: count, sha256 of the ids as little-endian int32, the first 16 ids, and
the ids of each probe string (added tokens split out first, longest match).
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


def make_encoder(tj):
    m = tj["model"]
    vocab = m["vocab"]
    ranks = {}
    for i, mg in enumerate(m["merges"]):
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        ranks[(a, b)] = i
    b2u = bytes_to_unicode()
    added = {t["content"]: t["id"] for t in tj.get("added_tokens") or []}
    added_re = regex.compile("|".join(regex.escape(a) for a in sorted(added, key=len, reverse=True))) \
        if added else None
    cache = {}

    def bpe(w):
        word = [b2u[b] for b in w.encode("utf-8")]
        while len(word) > 1:
            best = min((ranks.get((word[i], word[i + 1]), 1 << 60), i) for i in range(len(word) - 1))
            if best[0] == 1 << 60:
                break
            bp = (word[best[1]], word[best[1] + 1])
            out, i = [], 0
            while i < len(word):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(word) and (word[i], word[i + 1]) == bp:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return [vocab[t] for t in word]

    def encode_plain(text):
        ids = []
        for w in PAT.findall(text):
            if w not in cache:
                cache[w] = bpe(w)
            ids.extend(cache[w])
        return ids

    def encode(text):
        if not added_re:
            return encode_plain(text)
        ids, last = [], 0
        for mt in added_re.finditer(text):
            ids += encode_plain(text[last:mt.start()]) + [added[mt.group(0)]]
            last = mt.end()
        return ids + encode_plain(text[last:])

    return encode


def main():
    tj = json.load(open(sys.argv[1] + "/tokenizer.json", encoding="utf-8"))
    encode = make_encoder(tj)
    text = open(sys.argv[2], encoding="utf-8", newline="").read()
    ids = encode(text)
    raw = struct.pack("<%di" % len(ids), *ids)
    rec = {"count": len(ids), "sha256": hashlib.sha256(raw).hexdigest(), "first16": ids[:16]}
    if len(sys.argv) > 3:
        rec["probes"] = [encode(p) for p in json.load(open(sys.argv[3], encoding="utf-8"))]
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
