#!/usr/bin/env python3
"""Write a synthetic Llama checkpoint (random bf16 weights, unit norms) with chosen layer
shapes, for scale-out simulations (docs/scale-out.md). The tokenizer files come from
data/models/cq-llama-tiny (vocab 8192), so text calibration works.

usage: make_synth_llama.py OUT HIDDEN INTERMEDIATE HEADS KV_HEADS [LAYERS] [HEAD_DIM]
e.g.   make_synth_llama.py /tmp/synth70b-1l 8192 28672 64 8 1     (one Llama-2-70B layer)
       make_synth_llama.py /tmp/synth70b-8th 1024 3584 8 1 1 128  (70B proportions / 8)
Standard library only; weights ~ +-[2^-7, 2^-5) with random signs and mantissas."""
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "..", "data", "models", "cq-llama-tiny")
VOCAB = 8192


def rand_bf16(n):
    lo = os.urandom(n)
    # high byte: random sign, exponent 0111100x -> magnitude 2^-7 .. 2^-5
    hi = os.urandom(n).translate(bytes(0x3C if b < 128 else 0xBC for b in range(256)))
    out = bytearray(2 * n)
    out[0::2] = lo
    out[1::2] = hi
    return out


def ones_bf16(n):
    return b"\x80\x3f" * n


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    out = sys.argv[1]
    H, I, nh, nkv = (int(x) for x in sys.argv[2:6])
    L = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    hd = int(sys.argv[7]) if len(sys.argv) > 7 else H // nh
    os.makedirs(out, exist_ok=True)
    shapes = [("model.embed_tokens.weight", [VOCAB, H], rand_bf16)]
    for l in range(L):
        p = f"model.layers.{l}."
        shapes += [
            (p + "input_layernorm.weight", [H], ones_bf16),
            (p + "post_attention_layernorm.weight", [H], ones_bf16),
            (p + "self_attn.q_proj.weight", [nh * hd, H], rand_bf16),
            (p + "self_attn.k_proj.weight", [nkv * hd, H], rand_bf16),
            (p + "self_attn.v_proj.weight", [nkv * hd, H], rand_bf16),
            (p + "self_attn.o_proj.weight", [H, nh * hd], rand_bf16),
            (p + "mlp.gate_proj.weight", [I, H], rand_bf16),
            (p + "mlp.up_proj.weight", [I, H], rand_bf16),
            (p + "mlp.down_proj.weight", [H, I], rand_bf16),
        ]
    shapes.append(("model.norm.weight", [H], ones_bf16))
    header, off = {}, 0
    for name, shape, _ in shapes:
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + 2 * n]}
        off += 2 * n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape, gen in shapes:
            n = 1
            for d in shape:
                n *= d
            for k in range(0, n, 1 << 24):  # bounded memory
                f.write(gen(min(1 << 24, n - k)))
    with open(os.path.join(TINY, "config.json")) as f:
        cfg = json.load(f)
    cfg.update(hidden_size=H, intermediate_size=I, num_attention_heads=nh,
               num_key_value_heads=nkv, num_hidden_layers=L, head_dim=hd, vocab_size=VOCAB)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for aux in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "generation_config.json"):
        shutil.copy(os.path.join(TINY, aux), out)
    print(out)


if __name__ == "__main__":
    main()
