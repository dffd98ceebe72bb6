#!/usr/bin/env python3
"""Reference check for cquant's MoE outputs (docs/moe.md): decode every packed Linear of a
quantized Mixtral / Qwen2-MoE / Qwen3-MoE folder with load_quantized.py's independent decoders,
save the float weights (routers as stored: float) with the config minus quantization_config,
load them with transformers' own MoE model (from_pretrained, fp32, eager) and print the
perplexity over windows of SEQLEN of the fixture's `text_ids`. `cquant eval --json QDIR
IDS.safetensors` on the same windows must agree (IDS.safetensors: `input_ids` [n, SEQLEN] of the
same ids, written by --write-ids).

  moe_load_check.py QDIR tests/data/arch/<name>/reference.safetensors [--seqlen 64]
                    [--write-ids IDS.safetensors]
"""
import argparse
import json
import math
import os
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load_quantized as lq  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qdir")
    ap.add_argument("reference")
    ap.add_argument("--seqlen", type=int, default=64)
    ap.add_argument("--write-ids")
    a = ap.parse_args()
    ids = load_file(a.reference)["text_ids"].long()
    n = ids.numel() // a.seqlen
    win = ids[: n * a.seqlen].view(n, a.seqlen)
    if a.write_ids:
        save_file({"input_ids": win.to(torch.int32).contiguous()}, a.write_ids)
    cfg, W, kind = lq.load(a.qdir)
    from transformers import AutoModelForCausalLM
    with tempfile.TemporaryDirectory() as d:
        cfg["dtype"] = "float32"
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
        save_file({k: v.contiguous() for k, v in W.items()}, os.path.join(d, "model.safetensors"))
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                     attn_implementation="eager").eval()
    with torch.no_grad():
        logits = model(win).logits.float()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                            win[:, 1:].reshape(-1), reduction="sum").item()
    print(json.dumps({"dir": a.qdir, "format": kind, "windows": n, "seqlen": a.seqlen,
                      "ppl": math.exp(nll / (n * (a.seqlen - 1)))}))


if __name__ == "__main__":
    main()
