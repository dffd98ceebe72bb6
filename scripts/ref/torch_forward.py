#!/usr/bin/env python3
"""PyTorch-CPU forward of a Llama checkpoint for scripts/bench_forward.sh (reference/bench only).

Reads the safetensors files directly (no transformers / safetensors packages needed), runs the
same f32 forward as cquant (RMSNorm, rotate-half RoPE, causal GQA attention, SwiGLU, tied head)
on the same pseudo-random ids as scripts/bench_forward.c, and prints key=value lines:
tokens, seconds, tokens_per_s, mean_nll (must agree with cquant's to ~1e-5).
usage: torch_forward.py MODEL_DIR N_WINDOWS SEQLEN THREADS
"""
import json
import os
import struct
import sys
import time

import torch

DT = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


def load(model_dir):
    files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors")
                   and not f.startswith("reference"))
    out = {}
    for f in files:
        raw = open(os.path.join(model_dir, f), "rb").read()
        (hl,) = struct.unpack("<Q", raw[:8])
        hdr = json.loads(raw[8:8 + hl])
        for name, t in hdr.items():
            if name == "__metadata__":
                continue
            a, b = t["data_offsets"]
            buf = bytearray(raw[8 + hl + a:8 + hl + b])
            out[name] = torch.frombuffer(buf, dtype=DT[t["dtype"]]).reshape(t["shape"]).float()
    return out


def ids_like_c(n, vocab):
    x, ids = 1, []
    for _ in range(n):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        ids.append((x >> 8) % vocab)
    return torch.tensor(ids, dtype=torch.long)


def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def main():
    model_dir, nw, S, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    W = load(model_dir)
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim", H // nh)
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta", 10000.0)
    V = cfg["vocab_size"]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    freqs = torch.arange(S).float()[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), -1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((S, S), float("-inf")).triu(1)
    lm = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    ids = ids_like_c(nw * S, V).reshape(nw, S)

    def rot(x):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return torch.cat((-x2, x1), -1)

    t0 = time.time()
    nll_sum = 0.0
    with torch.no_grad():
        for w in range(nw):
            x = W["model.embed_tokens.weight"][ids[w]]
            for i in range(cfg["num_hidden_layers"]):
                p = f"model.layers.{i}."
                h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
                q = (h @ W[p + "self_attn.q_proj.weight"].T).view(S, nh, hd).transpose(0, 1)
                k = (h @ W[p + "self_attn.k_proj.weight"].T).view(S, nkv, hd).transpose(0, 1)
                v = (h @ W[p + "self_attn.v_proj.weight"].T).view(S, nkv, hd).transpose(0, 1)
                q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
                k = k.repeat_interleave(nh // nkv, 0)
                v = v.repeat_interleave(nh // nkv, 0)
                a = torch.softmax(q @ k.transpose(1, 2) / hd ** 0.5 + mask, -1) @ v
                x = x + a.transpose(0, 1).reshape(S, nh * hd) @ W[p + "self_attn.o_proj.weight"].T
                h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
                g = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T)
                x = x + (g * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
            logits = rmsnorm(x[:-1], W["model.norm.weight"], eps) @ lm.T
            nll_sum += torch.nn.functional.cross_entropy(logits, ids[w, 1:], reduction="sum").item()
    dt = time.time() - t0
    T = nw * S
    print(f"tokens={T} seconds={dt:.3f} tokens_per_s={T / dt:.0f} "
          f"mean_nll={nll_sum / (nw * (S - 1)):.6f}")


if __name__ == "__main__":
    main()
