#!/usr/bin/env python3
"""Writes an original-layout Stable Diffusion 1.5 InstructPix2Pix checkpoint with zero weights.

  bench/make_sd15_original.py OUT.safetensors [--dtype F16|F32]

Key names and shapes follow the CompVis latent-diffusion modules of SD 1.5 (UNet with 8 input
channels as InstructPix2Pix's, AutoencoderKL f=8, CLIP ViT-L/14 text encoder), built here from the
architecture's own description, not from the engine's mapping: fairy-engine info and convert read
it as users' files. The tensor data is a sparse hole (zeros), so writing takes no time and little
disk; published counts to compare with: UNet 859,532,484 parameters (859,520,964 with 4 input
channels + 320*4*9), VAE 83,653,863, text encoder 123,060,480.
"""
import json
import struct
import sys

DTYPES = {"F16": 2, "F32": 4}


def resblock(keys, p, cin, cout, emb=None, vae=False):
    norm1, conv1, norm2, conv2 = ("norm1", "conv1", "norm2", "conv2") if vae else \
        ("in_layers.0", "in_layers.2", "out_layers.0", "out_layers.3")
    keys[f"{p}.{norm1}.weight"] = [cin]
    keys[f"{p}.{norm1}.bias"] = [cin]
    keys[f"{p}.{conv1}.weight"] = [cout, cin, 3, 3]
    keys[f"{p}.{conv1}.bias"] = [cout]
    if emb:
        keys[f"{p}.emb_layers.1.weight"] = [cout, emb]
        keys[f"{p}.emb_layers.1.bias"] = [cout]
    keys[f"{p}.{norm2}.weight"] = [cout]
    keys[f"{p}.{norm2}.bias"] = [cout]
    keys[f"{p}.{conv2}.weight"] = [cout, cout, 3, 3]
    keys[f"{p}.{conv2}.bias"] = [cout]
    if cin != cout:
        skip = "nin_shortcut" if vae else "skip_connection"
        keys[f"{p}.{skip}.weight"] = [cout, cin, 1, 1]
        keys[f"{p}.{skip}.bias"] = [cout]


def transformer(keys, p, c, context=768):
    for n in ("norm",):
        keys[f"{p}.{n}.weight"] = [c]
        keys[f"{p}.{n}.bias"] = [c]
    keys[f"{p}.proj_in.weight"] = [c, c, 1, 1]
    keys[f"{p}.proj_in.bias"] = [c]
    b = f"{p}.transformer_blocks.0"
    for attn, kv in (("attn1", c), ("attn2", context)):
        keys[f"{b}.{attn}.to_q.weight"] = [c, c]
        keys[f"{b}.{attn}.to_k.weight"] = [c, kv]
        keys[f"{b}.{attn}.to_v.weight"] = [c, kv]
        keys[f"{b}.{attn}.to_out.0.weight"] = [c, c]
        keys[f"{b}.{attn}.to_out.0.bias"] = [c]
    keys[f"{b}.ff.net.0.proj.weight"] = [8 * c, c]  # GEGLU: 2 x (4c)
    keys[f"{b}.ff.net.0.proj.bias"] = [8 * c]
    keys[f"{b}.ff.net.2.weight"] = [c, 4 * c]
    keys[f"{b}.ff.net.2.bias"] = [c]
    for n in ("norm1", "norm2", "norm3"):
        keys[f"{b}.{n}.weight"] = [c]
        keys[f"{b}.{n}.bias"] = [c]
    keys[f"{p}.proj_out.weight"] = [c, c, 1, 1]
    keys[f"{p}.proj_out.bias"] = [c]


def unet(keys, p="model.diffusion_model", ch=320, mult=(1, 2, 4, 4), res=2, attn_levels=(0, 1, 2), cin=8):
    emb = 4 * ch
    keys[f"{p}.time_embed.0.weight"] = [emb, ch]
    keys[f"{p}.time_embed.0.bias"] = [emb]
    keys[f"{p}.time_embed.2.weight"] = [emb, emb]
    keys[f"{p}.time_embed.2.bias"] = [emb]
    keys[f"{p}.input_blocks.0.0.weight"] = [ch, cin, 3, 3]
    keys[f"{p}.input_blocks.0.0.bias"] = [ch]
    chans, c, i = [ch], ch, 1
    for level, m in enumerate(mult):
        for _ in range(res):
            resblock(keys, f"{p}.input_blocks.{i}.0", c, ch * m, emb)
            c = ch * m
            if level in attn_levels:
                transformer(keys, f"{p}.input_blocks.{i}.1", c)
            chans.append(c)
            i += 1
        if level != len(mult) - 1:
            keys[f"{p}.input_blocks.{i}.0.op.weight"] = [c, c, 3, 3]
            keys[f"{p}.input_blocks.{i}.0.op.bias"] = [c]
            chans.append(c)
            i += 1
    resblock(keys, f"{p}.middle_block.0", c, c, emb)
    transformer(keys, f"{p}.middle_block.1", c)
    resblock(keys, f"{p}.middle_block.2", c, c, emb)
    i = 0
    for level, m in reversed(list(enumerate(mult))):
        for j in range(res + 1):
            resblock(keys, f"{p}.output_blocks.{i}.0", c + chans.pop(), ch * m, emb)
            c = ch * m
            n = 1
            if level in attn_levels:
                transformer(keys, f"{p}.output_blocks.{i}.1", c)
                n = 2
            if level and j == res:
                keys[f"{p}.output_blocks.{i}.{n}.conv.weight"] = [c, c, 3, 3]
                keys[f"{p}.output_blocks.{i}.{n}.conv.bias"] = [c]
            i += 1
    keys[f"{p}.out.0.weight"] = [c]
    keys[f"{p}.out.0.bias"] = [c]
    keys[f"{p}.out.2.weight"] = [4, c, 3, 3]
    keys[f"{p}.out.2.bias"] = [4]


def vae(keys, p="first_stage_model", ch=128, mult=(1, 2, 4, 4), res=2, z=4):
    def attn(q):
        for n in ("norm",):
            keys[f"{q}.{n}.weight"] = [c]
            keys[f"{q}.{n}.bias"] = [c]
        for n in ("q", "k", "v", "proj_out"):
            keys[f"{q}.{n}.weight"] = [c, c, 1, 1]
            keys[f"{q}.{n}.bias"] = [c]

    keys[f"{p}.encoder.conv_in.weight"] = [ch, 3, 3, 3]
    keys[f"{p}.encoder.conv_in.bias"] = [ch]
    c = ch
    for level, m in enumerate(mult):
        for j in range(res):
            resblock(keys, f"{p}.encoder.down.{level}.block.{j}", c, ch * m, vae=True)
            c = ch * m
        if level != len(mult) - 1:
            keys[f"{p}.encoder.down.{level}.downsample.conv.weight"] = [c, c, 3, 3]
            keys[f"{p}.encoder.down.{level}.downsample.conv.bias"] = [c]
    for side in ("encoder", "decoder"):
        if side == "decoder":
            keys[f"{p}.decoder.conv_in.weight"] = [c, z, 3, 3]
            keys[f"{p}.decoder.conv_in.bias"] = [c]
        resblock(keys, f"{p}.{side}.mid.block_1", c, c, vae=True)
        attn(f"{p}.{side}.mid.attn_1")
        resblock(keys, f"{p}.{side}.mid.block_2", c, c, vae=True)
        if side == "encoder":
            keys[f"{p}.encoder.norm_out.weight"] = [c]
            keys[f"{p}.encoder.norm_out.bias"] = [c]
            keys[f"{p}.encoder.conv_out.weight"] = [2 * z, c, 3, 3]
            keys[f"{p}.encoder.conv_out.bias"] = [2 * z]
    keys[f"{p}.quant_conv.weight"] = [2 * z, 2 * z, 1, 1]
    keys[f"{p}.quant_conv.bias"] = [2 * z]
    keys[f"{p}.post_quant_conv.weight"] = [z, z, 1, 1]
    keys[f"{p}.post_quant_conv.bias"] = [z]
    for level, m in reversed(list(enumerate(mult))):
        for j in range(res + 1):
            resblock(keys, f"{p}.decoder.up.{level}.block.{j}", c, ch * m, vae=True)
            c = ch * m
        if level:
            keys[f"{p}.decoder.up.{level}.upsample.conv.weight"] = [c, c, 3, 3]
            keys[f"{p}.decoder.up.{level}.upsample.conv.bias"] = [c]
    keys[f"{p}.decoder.norm_out.weight"] = [c]
    keys[f"{p}.decoder.norm_out.bias"] = [c]
    keys[f"{p}.decoder.conv_out.weight"] = [3, c, 3, 3]
    keys[f"{p}.decoder.conv_out.bias"] = [3]


def clip(keys, p="cond_stage_model.transformer.text_model", width=768, layers=12, vocab=49408):
    keys[f"{p}.embeddings.token_embedding.weight"] = [vocab, width]
    keys[f"{p}.embeddings.position_embedding.weight"] = [77, width]
    for i in range(layers):
        b = f"{p}.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys[f"{b}.self_attn.{proj}.weight"] = [width, width]
            keys[f"{b}.self_attn.{proj}.bias"] = [width]
        for n in ("layer_norm1", "layer_norm2"):
            keys[f"{b}.{n}.weight"] = [width]
            keys[f"{b}.{n}.bias"] = [width]
        keys[f"{b}.mlp.fc1.weight"] = [4 * width, width]
        keys[f"{b}.mlp.fc1.bias"] = [4 * width]
        keys[f"{b}.mlp.fc2.weight"] = [width, 4 * width]
        keys[f"{b}.mlp.fc2.bias"] = [width]
    keys[f"{p}.final_layer_norm.weight"] = [width]
    keys[f"{p}.final_layer_norm.bias"] = [width]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    dtype = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--dtype" else "F16"
    keys = {}
    unet(keys)
    vae(keys)
    clip(keys)
    keys["betas"] = [1000]  # a noise-schedule buffer, as the original files carry
    header, offset = {}, 0
    counts = {}
    for name, shape in keys.items():
        n = 1
        for d in shape:
            n *= d
        size = n * DTYPES[dtype if name != "betas" else "F32"]
        header[name] = {"dtype": dtype if name != "betas" else "F32", "shape": shape,
                        "data_offsets": [offset, offset + size]}
        offset += size
        part = name.split(".")[0]
        counts[part] = counts.get(part, 0) + n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        f.truncate(8 + len(blob) + offset)  # zeros, as a sparse hole
    print(f"{out}: {len(keys)} tensors, {offset / 2**30:.2f} GiB of {dtype}; parameters: " +
          ", ".join(f"{k} {v:,}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
