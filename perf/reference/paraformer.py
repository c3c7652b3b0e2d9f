"""ParaFormer and its ViT baseline in PyTorch, defined as ParaCuda defines them: the reference that ParaCuda's
numbers are checked and timed against.

Modules carry ParaCuda's names, so a state dict exported by `paracuda export --format pytorch` loads with
`load_state_dict(strict=True)`, and `save()` writes one `paracuda import` reads. Three tensors differ from
ParaCuda's own layout (PyTorch's is the usual one): embed.proj is a Conv2d, weight [D, C, p, p]; embed.cls is
[1, 1, D]; embed.pos is [1, T, D].

    model = build(config)                       # config: the dict in a checkpoint's config.json
    model, config = load("model.safetensors")   # any ParaCuda checkpoint, or a file from paracuda export or save()
    save("model.safetensors", model, config)
"""
import json
import math
import struct

import torch
from torch import nn

DTYPES = {"F32": torch.float32, "I32": torch.int32}


class PatchEmbedding(nn.Module):
    def __init__(self, image_size, channels, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (image_size // patch) ** 2 + 1, dim) * 0.02)

    def forward(self, images):
        patches = self.proj(images).flatten(2).transpose(1, 2)  # [B, N, D], patches row by row
        return torch.cat([self.cls.expand(images.shape[0], -1, -1), patches], dim=1) + self.pos


class Attention(nn.Module):
    def __init__(self, dim, heads, head_dim):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)  # q, k, v side by side, each split into heads
        self.proj = nn.Linear(heads * head_dim, dim)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim), dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, t, -1))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)))  # the exact (erf) GELU


class Block(nn.Module):
    """Pre-norm block; with skip "normalized" the skip carries LN(x) (the ParaFormer reference's), else x."""

    def __init__(self, dim, heads, head_dim, mlp_dim, skip):
        super().__init__()
        self.normalized = skip == "normalized"
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x):
        n = self.norm1(x)
        x = (n if self.normalized else x) + self.attn(n)
        n = self.norm2(x)
        return (n if self.normalized else x) + self.mlp(n)


class Branch(nn.Module):
    def __init__(self, depth, *block):
        super().__init__()
        self.blocks = nn.ModuleList(Block(*block) for _ in range(depth))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class Head(nn.Module):
    def __init__(self, dim, classes, pool):
        super().__init__()
        self.pool = pool
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, classes)

    def forward(self, tokens):
        return self.fc(self.norm(tokens[:, 0] if self.pool == "cls" else tokens.mean(dim=1)))


class ParaFormer(nn.Module):
    """A shared patch embedding, B parallel branches whose token features are summed, one shared head."""

    def __init__(self, c):
        super().__init__()
        self.embed = PatchEmbedding(c["image_size"], c["channels"], c["patch"], c["dim"])
        block = (c["dim"], c["heads"], c["head_dim"] or c["dim"] // c["heads"], c["mlp_dim"], c["skip"])
        self.branches = nn.ModuleList(Branch(c["branch_depth"], *block) for _ in range(c["branches"]))
        self.head = Head(c["dim"], c["classes"], c["pool"])

    def forward(self, images, k=None):
        """Logits of the first k branches (all by default)."""
        tokens = self.embed(images)
        return self.head(sum(branch(tokens) for branch in self.branches[: k or len(self.branches)]))


class Vit(nn.Module):
    """The deep sequential baseline: the same embedding and head around one stack of blocks."""

    def __init__(self, c):
        super().__init__()
        self.embed = PatchEmbedding(c["image_size"], c["channels"], c["patch"], c["dim"])
        block = (c["dim"], c["heads"], c["head_dim"] or c["dim"] // c["heads"], c["mlp_dim"], c["skip"])
        self.blocks = nn.ModuleList(Block(*block) for _ in range(c["depth"]))
        self.head = Head(c["dim"], c["classes"], c["pool"])

    def forward(self, images, k=None):
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def build(config):
    """The model a ParaCuda config (a checkpoint's config.json, as a dict) describes."""
    return (ParaFormer if config["kind"] == "para_former" else Vit)(config)


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file."""
    with open(path, "rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(length))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(data[start:end]), dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return tensors, metadata


def write_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, tensor in tensors.items():
        blob = tensor.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def from_paracuda_layout(tensors, config):
    """ParaCuda's own checkpoint layout to PyTorch's: the patch projection [D, p*p*C] flattened as (row, column,
    channel) becomes the Conv2d weight [D, C, p, p]; cls and pos gain their leading ones; optimizer state goes."""
    d, c, p = config["dim"], config["channels"], config["patch"]
    out = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    out["embed.proj.weight"] = out["embed.proj.weight"].reshape(d, p, p, c).permute(0, 3, 1, 2).contiguous()
    out["embed.cls"] = out["embed.cls"].reshape(1, 1, d)
    out["embed.pos"] = out["embed.pos"].reshape(1, -1, d)
    return out


def load(path):
    """(model, config) from any ParaCuda checkpoint (train, compress, expand) or a file in PyTorch's layout that
    carries its config (paracuda export, or save())."""
    tensors, metadata = read_safetensors(path)
    config = json.loads(metadata["paracuda.config"])
    if metadata.get("paracuda.kind") != "pytorch":
        tensors = from_paracuda_layout(tensors, config)
    model = build(config)
    model.load_state_dict(tensors, strict=True)
    return model.eval(), config


def save(path, model, config):
    """Writes model's weights, with the config, for `paracuda import`."""
    write_safetensors(path, model.state_dict(), {"paracuda.kind": "pytorch", "paracuda.config": json.dumps(config)})
