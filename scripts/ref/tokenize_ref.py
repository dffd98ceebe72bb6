#!/usr/bin/env python3
"""HF reference ids for cquant's tokenizer tests (run where `tokenizers`/`transformers` exist).

For each tokenizer folder: encode the text file with the `tokenizers` library (no special tokens),
write <out>/<name>.ids.bin (little-endian int32), and record in <out>/tokenize_ref.json the count,
the sha256 of those bytes, the first 16 ids, the ids with special tokens for a short string, the
ids of each probe string in tests/data/tokenizer_probes.json, and whether transformers'
AutoTokenizer agrees on the whole text. Paste the values into tests/data/tokenizer_expected.json.

Usage: python3 scripts/ref/tokenize_ref.py --text TEXT.txt --out OUTDIR DIR [DIR ...]
"""
import argparse
import hashlib
import json
import os
import struct
import sys


def ids_sha(ids):
    raw = struct.pack("<%di" % len(ids), *ids)
    return raw, hashlib.sha256(raw).hexdigest()


def one(d, text, probes, out):
    from tokenizers import Tokenizer
    name = os.path.basename(os.path.normpath(d))
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    ids = tok.encode(text, add_special_tokens=False).ids
    raw, sha = ids_sha(ids)
    with open(os.path.join(out, name + ".ids.bin"), "wb") as f:
        f.write(raw)
    tj = open(os.path.join(d, "tokenizer.json"), "rb").read()
    rec = {"count": len(ids), "sha256": sha, "first16": ids[:16],
           "tokenizer_json_sha256": hashlib.sha256(tj).hexdigest(),
           "with_special_hello": tok.encode("Hello world", add_special_tokens=True).ids,
           "probes": [tok.encode(p, add_special_tokens=False).ids for p in probes],
           "decode_roundtrip": tok.decode(ids, skip_special_tokens=False) == text}
    try:
        import transformers
        at = transformers.AutoTokenizer.from_pretrained(d)
        tids = at(text, add_special_tokens=False)["input_ids"]
        rec["transformers_version"] = transformers.__version__
        rec["transformers_agrees"] = tids == ids
        rec["transformers_with_special_hello"] = at("Hello world")["input_ids"]
    except Exception as e:  # noqa: BLE001 - record why, keep the tokenizers result
        rec["transformers_error"] = repr(e)[:300]
    import tokenizers
    rec["tokenizers_version"] = tokenizers.__version__
    return name, rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--probes", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                     "tests", "data", "tokenizer_probes.json"))
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    with open(a.text, encoding="utf-8", newline="") as f:
        text = f.read()
    probes = json.load(open(a.probes, encoding="utf-8")) if os.path.exists(a.probes) else []
    res = {"text": os.path.basename(a.text), "text_chars": len(text),
           "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "tokenizers": {}}
    for d in a.dirs:
        name, rec = one(d, text, probes, a.out)
        res["tokenizers"][name] = rec
        print(name, rec["count"], rec["sha256"], rec["first16"][:8], file=sys.stderr)
    with open(os.path.join(a.out, "tokenize_ref.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
