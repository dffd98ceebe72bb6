#!/usr/bin/env python3
"""Load a cquant output (GPTQ v1/v2, AWQ GEMM or compressed-tensors pack-quantized) into a
transformers causal LM of the checkpoint's architecture by decoding every packed Linear with the published layouts (notes §B, §C, §D),
written here independently of cquant's C code, then measure WikiText perplexity with the HF model.

  load_quantized.py QDIR EVAL_IDS [--seqlens 1024] [--device cuda] [--save-f32 OUT.safetensors]

EVAL_IDS: raw little-endian int32 ids (the WikiText text tokenized without BOS), or a calib.bin
(`input_ids` [n, seqlen]) whose rows are then the windows when --seqlens is its row length."""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama as tl  # noqa: E402


def unpack_stream(words, n, b):
    """Dense LSB-first bit stream along the last axis: [.., W] int32 -> [.., n] codes."""
    w = words.to(torch.int64) & 0xFFFFFFFF
    bits = ((w.unsqueeze(-1) >> torch.arange(32)) & 1).reshape(*w.shape[:-1], -1)
    bits = bits[..., : n * b].reshape(*w.shape[:-1], n, b)
    return (bits * (1 << torch.arange(b))).sum(-1)


def dec_gptq(T, p, qc):
    b = qc["bits"]
    v2 = qc.get("checkpoint_format", qc.get("format")) == "gptq_v2"
    qw, qz = T[p + ".qweight"], T[p + ".qzeros"]
    sc, gi = T[p + ".scales"].float(), T[p + ".g_idx"].long()
    out = qw.shape[1]
    cin = gi.numel()
    q = unpack_stream(qw.T.contiguous(), cin, b)            # [out, in]
    z = unpack_stream(qz, out, b)                            # [ng, out]
    if not v2:
        z = z + 1
    return sc[gi].T * (q - z[gi].T)                          # [out, in]


AWQ_REV = [0, 4, 1, 5, 2, 6, 3, 7]


def dec_awq(T, p, qc):
    G = qc.get("group_size", qc.get("q_group_size"))
    qw, qz, sc = T[p + ".qweight"], T[p + ".qzeros"], T[p + ".scales"].float()

    def nib(x):
        x = x.to(torch.int64) & 0xFFFFFFFF
        v = (x.unsqueeze(-1) >> (4 * torch.arange(8))) & 15   # nibble i -> column ORDER[i]
        v = v[..., AWQ_REV]
        return v.reshape(x.shape[0], -1)
    q, z = nib(qw), nib(qz)                                  # [in, out], [ng, out]
    g = torch.arange(q.shape[0]) // G
    return ((q - z[g]) * sc[g]).T


def dec_ct(T, p, qc):
    w = next(iter(qc["config_groups"].values()))["weights"]
    b = w["num_bits"]
    out, cin = [int(v) for v in T[p + ".weight_shape"]]
    q = unpack_stream(T[p + ".weight_packed"], cin, b) - (1 << (b - 1))
    sc = T[p + ".weight_scale"].float()                     # [out, ng]
    G = w.get("group_size") or cin
    gi = T[p + ".weight_g_idx"].long() if p + ".weight_g_idx" in T else torch.arange(cin) // G
    zp = 0
    if p + ".weight_zero_point" in T:
        zp = unpack_stream(T[p + ".weight_zero_point"].T.contiguous(), out, b).T - (1 << (b - 1))
        zp = zp[:, gi]
    return (q - zp) * sc[:, gi]


def load(qdir):
    cfg = json.load(open(os.path.join(qdir, "config.json")))
    qc = cfg.pop("quantization_config")
    T, _ = tl.st_load_model(qdir)
    kind = qc["quant_method"]
    dec, key = {"gptq": (dec_gptq, ".qweight"), "awq": (dec_awq, ".qweight"),
                "compressed-tensors": (dec_ct, ".weight_packed")}[kind]
    W = {}
    for name, t in T.items():
        if name.endswith(key):
            p = name[: -len(key)]
            W[p + ".weight"] = dec(T, p, qc).float()
    for name, t in T.items():
        base = name.rsplit(".", 1)[0]
        if base + ".weight" in W and name != base + ".bias":
            continue
        if t.is_floating_point():
            W[name] = t.float()
    return cfg, W, kind


def build_model(cfg, W):
    """Any transformers causal LM: the decoded float weights and the config without its
    quantization_config go through from_pretrained, which maps checkpoint names onto the
    model's own layout (fused experts in recent transformers, tied heads)."""
    import tempfile
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    torch.backends.cuda.matmul.allow_tf32 = False
    with tempfile.TemporaryDirectory() as d:
        save_file({k: v.contiguous() for k, v in W.items()}, os.path.join(d, "model.safetensors"),
                  metadata={"format": "pt"})
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        try:
            model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                         attn_implementation="eager")
        except TypeError:
            model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32,
                                                         attn_implementation="eager")
    n_w = sum(1 for k in W if k.endswith(".weight"))
    n_p = sum(1 for _ in model.state_dict())
    print(f"# {type(model).__name__}: {n_w} weights loaded, {n_p} model tensors", file=sys.stderr)
    return model


def read_ids(path):
    """Raw little-endian int32 ids, or a calib.bin (safetensors with input_ids [n, seqlen])."""
    with open(path, "rb") as f:
        head = f.read(8)
    n = int.from_bytes(head, "little")
    if 0 < n < 1 << 24:
        try:
            from safetensors.torch import load_file
            return load_file(path)["input_ids"].to(torch.int64).reshape(-1)
        except Exception:
            pass
    return torch.from_numpy(np.fromfile(path, dtype="<i4").astype(np.int64))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qdir")
    ap.add_argument("eval_ids")
    ap.add_argument("--seqlens", default="1024")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--save-f32")
    args = ap.parse_args()
    cfg, W, kind = load(args.qdir)
    if args.save_f32:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in W.items()}, args.save_f32)
    model = build_model(cfg, W).to(args.device).eval()
    ids = read_ids(args.eval_ids)
    res = {"dir": args.qdir, "format": kind}
    for s in [int(v) for v in args.seqlens.split(",")]:
        n = ids.numel() // s
        win = ids[: n * s].view(n, s).to(args.device)
        tot = 0.0
        with torch.no_grad():
            for i in range(0, n, 16):
                logits = model(win[i:i + 16]).logits.float()
                tot += torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), win[i:i + 16, 1:].reshape(-1),
                    reduction="sum").item()
        res[f"ppl@{s}"] = math.exp(tot / (n * (s - 1)))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
