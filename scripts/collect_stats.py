#!/usr/bin/env python3
"""Collect GPTQ statistics for any Hugging Face causal LM, in cquant's statistics-file format.

For every nn.Linear inside the decoder blocks it accumulates, over the calibration sequences,
    H = (2 / n_seqs) * sum_tokens x x^T        (GPTQ's Hessian, notes §E.1)
in float64 from the inputs seen by a forward pre-hook, and writes one tensor
`<linear-name>.hessian` [in, in] per Linear (F32 by default, --f64 for F64) into a safetensors
file whose __metadata__ records n_samples (sequences), n_tokens and the calibration source.
The statistics come from the unquantized model in one pass (no true-sequential updates); use
cquant's native pipeline for sequential GPTQ on supported architectures. See docs/stats.md.

Usage:
  collect_stats.py MODEL_DIR OUT.safetensors (--calib calib.safetensors | --text FILE)
                   [--samples 128] [--seqlen 2048] [--seed 0] [--f64] [--device cpu|cuda]
"""
import argparse
import random

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def calib_ids(args, tok):
    if args.calib:
        with safe_open(args.calib, "pt") as f:
            return f.get_tensor("input_ids").to(torch.long)
    text = open(args.text, encoding="utf-8").read()
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    # GPTQ's wikitext2 protocol: random windows of one tokenized stream (notes §G.1).
    random.seed(args.seed)
    rows = []
    for _ in range(args.samples):
        i = random.randint(0, ids.numel() - args.seqlen - 1)
        rows.append(ids[i:i + args.seqlen])
    return torch.stack(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--calib")
    ap.add_argument("--text")
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--f64", action="store_true")
    ap.add_argument("--only", default=None, help="regex: keep only matching Linear names")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if not (args.calib or args.text):
        ap.error("give --calib or --text")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(args.device)
    model.eval()
    ids = calib_ids(args, tok)

    import re
    only = re.compile(args.only) if args.only else None
    sums, hooks = {}, []
    for name, mod in model.model.layers.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        full = "model.layers." + name
        if only and not only.search(full):
            continue
        sums[full] = torch.zeros(mod.in_features, mod.in_features, dtype=torch.float64,
                                 device=args.device)

        def hook(m, inp, full=full):
            x = inp[0].reshape(-1, inp[0].shape[-1]).to(torch.float64)
            sums[full] += x.T @ x
        hooks.append(mod.register_forward_pre_hook(hook))

    with torch.no_grad():
        for row in ids:
            model(row.unsqueeze(0).to(args.device))
    n = ids.shape[0]
    dt = torch.float64 if args.f64 else torch.float32
    tensors = {k + ".hessian": (v * (2.0 / n)).to(dt).cpu().contiguous() for k, v in sums.items()}
    meta = {"format": "pt", "cquant_stats": "1", "n_samples": str(n),
            "n_tokens": str(ids.numel()), "seqlen": str(ids.shape[1]),
            "source": args.calib or args.text, "seed": str(args.seed)}
    save_file(tensors, args.out, metadata=meta)
    print(f"wrote {len(tensors)} Hessians from {n} sequences to {args.out}")


if __name__ == "__main__":
    main()
