#!/usr/bin/env python3
"""Expected pre-tokenizer splits for tests/unit/test_tokenizer.c, from the `regex` module (an
independent regex engine) running the exact GPT-2, Llama-3 and Qwen2 patterns.

Writes tests/data/pretok_expected.json: {"gpt2"|"llama3"|"qwen2": [[text, [piece, ...]], ...]}.
The strings are the tokenizer probes plus seeded random mixes of a character pool chosen to hit
every branch (contractions, letters, digits, punctuation, all kinds of whitespace, CR/LF,
non-ASCII letters and numbers). Run: python3 scripts/ref/pretok_ref.py
"""
import json
import os
import random

import regex

PATTERNS = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "llama3": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "qwen2": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}

POOL = (["a", "b", "S", "T", "D", "l", "L", "e", "E", "r", "v", "m", "M", "'", "'", "'", " ", " ",
         " ", "  ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2003", "\u0085", "1", "2",
         "345", "\u00b2", "\u2167", "\u0663", "\uff11", "é", "ß", "ж", "日本", "😀", "-", ".", ",",
         "!", "?", "(", ")", "\"", "_", "$", "@", "ſ", "e\u0301", "\u200b"])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.join(here, "..", "..")
    probes = json.load(open(os.path.join(root, "tests", "data", "tokenizer_probes.json"),
                            encoding="utf-8"))
    rng = random.Random(1234)
    texts = list(probes)
    for _ in range(400):
        texts.append("".join(rng.choice(POOL) for _ in range(rng.randint(1, 24))))
    out = {}
    for name, pat in PATTERNS.items():
        rx = regex.compile(pat)
        rows = []
        for t in texts:
            pieces = rx.findall(t)
            assert "".join(pieces) == t, (name, t)  # the patterns cover every character
            rows.append([t, pieces])
        out[name] = rows
    with open(os.path.join(root, "tests", "data", "pretok_expected.json"), "w", encoding="utf-8") as f:
        f.write("{\n")  # one [text, pieces] row per line
        for k, name in enumerate(out):
            rows = ",\n".join(json.dumps(r, ensure_ascii=True) for r in out[name])
            f.write('"%s": [\n%s\n]%s\n' % (name, rows, "," if k + 1 < len(out) else ""))
        f.write("}\n")
    print("wrote", len(texts), "strings x", len(PATTERNS), "patterns")


if __name__ == "__main__":
    main()
