"""Train the cross-modal snippet embeddings and export them (``python -m models.embed.train``).

Writes, in ``models/``:

- ``embed_audio.onnx`` / ``embed_midi.onnx`` — the two pathways, each with ``metadata_props``
  ``feature_version`` (:data:`engine.embed_features.FEATURE_VERSION`), ``embed_dim``,
  ``snippet_frames`` and the open-set threshold calibrated on the validation pieces;
- ``embed_*.weights.npz`` — the PyTorch weights (plain arrays) and ``embed_*.fixture.npz`` — fixed
  inputs with the PyTorch outputs on them (a test checks onnxruntime reproduces them);
- ``embed/metrics.json`` and ``MODEL_CARD_embed.md`` via :mod:`models.embed.evaluate`.

Recipe: every step draws 64 training pieces × 4 positions spread over the piece; each position
gives an audio snippet of one of the piece's renditions and the MIDI snippet the true warp maps its
centre to. Loss: symmetric InfoNCE over the batch (audio → MIDI and MIDI → audio, every other
snippet of the batch a negative, including the same piece's other passages), plus a uniformity
term on the MIDI embeddings of different pieces — Dorfer et al.'s ranking loss only pushed
non-matching *audio* away from each MIDI snippet, so distinct MIDI snippets could collapse onto
each other, which hurts MIDI → audio retrieval and identification. AdamW, one-cycle schedule;
the checkpoint with the best validation MRR (audio → MIDI, held-out training pieces) is kept.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from engine import embed_features as ef
from engine.synthetic import warp_times
from models.embed import augment
from models.embed import data as embed_data

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "models"
CONFIG = {
    "steps": 3000, "pieces_per_batch": 64, "positions_per_piece": 4, "lr": 0.002, "weight_decay": 1e-4,
    "widths": (24, 48, 64), "dropout": 0.1, "init_logit_scale": 10.0, "uniformity_weight": 0.1,
    "validation_every": 100, "validation_fraction": 0.08, "seed": 0, "threads": 2,
    # Augmentation of each training pair (models.embed.augment): both snippets transposed by the
    # same whole number of semitones and time-stretched by the same factor. Off: on validation it
    # lowered MRR (see the model card); 64 pieces a batch helped instead.
    "transpose_semitones": (0, 0), "time_stretch": (1.0, 1.0),
}


class Pieces:
    """Feature arrays of some pieces, in memory (float32 rolls, float16 audio frames)."""

    def __init__(self, records, data_dir: Path = embed_data.DATA_DIR):
        self.records, self.rolls, self.renditions = [], [], []
        for rec in records:
            try:
                z = np.load(Path(data_dir) / "features" / f"{rec['id']}.npz")
                rolls = z["roll"].astype(np.float32)
                rends = [(z[f"audio_{k}"], z[f"warp_midi_s_{k}"], z[f"warp_audio_s_{k}"])
                         for k in range(embed_data.N_RENDITIONS)]
            except (OSError, KeyError, ValueError) as exc:  # an interrupted build's half-written file
                print(f"skip {rec['id']}: {exc}")
                continue
            self.records.append(rec)
            self.rolls.append(rolls)
            self.renditions.append(rends)

    def __len__(self):
        return len(self.records)

    def midi_start_for(self, piece: int, rendition: int, audio_start: np.ndarray) -> np.ndarray:
        """MIDI snippet starts whose centres the true warp maps to the audio snippets' centres."""
        _, warp_midi_s, warp_audio_s = self.renditions[piece][rendition]
        half = ef.SNIPPET_FRAMES / 2
        fps = ef.frames_per_second()
        centre_s = (np.asarray(audio_start) + half) / fps
        return np.round(warp_times(centre_s, warp_audio_s, warp_midi_s) * fps - half).astype(int)

    def pairs(self, piece: int, rendition: int, audio_starts, semitones=None,
              stretch_factors=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(audio snippets, MIDI snippets, usable mask) at the given audio starts.

        ``semitones`` / ``stretch_factors`` (one per start) augment both snippets of a pair alike
        (:mod:`models.embed.augment`); without them the pairs are what the engine would cut.
        """
        frames = self.renditions[piece][rendition][0].astype(np.float32)
        midi_starts = self.midi_start_for(piece, rendition, audio_starts)
        if stretch_factors is None:
            raw = ef.cut_snippets(frames, audio_starts)
            midi = ef.midi_snippets(self.rolls[piece], midi_starts)
        else:
            raw = augment.stretched_snippets(frames, audio_starts, stretch_factors, interpolate=True)
            midi = augment.stretched_snippets(self.rolls[piece], midi_starts, stretch_factors, interpolate=False)
        if semitones is not None:
            raw = augment.transpose(raw, semitones, fill_edge=True)
            midi = augment.transpose(midi, semitones, fill_edge=False)
        usable = ~ef.is_silent(raw, raw=True) & ~ef.is_silent(midi)
        return ef.compress_audio_snippets(raw), midi, usable


def sample_batch(pieces: Pieces, rng, n_pieces: int, per_piece: int, transpose_range=None, stretch_range=None):
    """Audio and MIDI snippets (and the piece of each pair) for one training step, augmented
    (:func:`models.embed.augment.draw`) when a range is given."""
    transposing, stretching = augment.transposes(transpose_range), augment.stretches(stretch_range)
    audio, midi, owner = [], [], []
    for p in rng.choice(len(pieces), size=min(n_pieces, len(pieces)), replace=False):
        r = int(rng.integers(embed_data.N_RENDITIONS))
        n_frames = len(pieces.renditions[p][r][0])
        top = max(1, n_frames - ef.SNIPPET_FRAMES)
        # One position in each of per_piece equal parts: passages of one piece, not overlapping copies.
        edges = np.linspace(0, top, per_piece + 1)
        starts = (edges[:-1] + rng.random(per_piece) * np.diff(edges)).astype(int)
        semitones, factors = augment.draw(rng, per_piece, transpose_range, stretch_range)  # draws only what is on
        a, m, ok = pieces.pairs(p, r, starts, semitones if transposing else None, factors if stretching else None)
        audio.append(a[ok])
        midi.append(m[ok])
        owner.append(np.full(int(ok.sum()), p))
    return np.concatenate(audio), np.concatenate(midi), np.concatenate(owner)


def evaluation_pairs(pieces: Pieces, rendition: int = 0, hop_frames: int = ef.SNIPPET_FRAMES):
    """Non-overlapping (audio, MIDI) snippet pairs of every piece, and the piece of each."""
    audio, midi, owner, starts_s = [], [], [], []
    for p in range(len(pieces)):
        n_frames = len(pieces.renditions[p][rendition][0])
        starts = ef.snippet_starts(n_frames, hop_frames)
        a, m, ok = pieces.pairs(p, rendition, starts)
        audio.append(a[ok])
        midi.append(m[ok])
        owner.append(np.full(int(ok.sum()), p))
        starts_s.append(starts[ok] / ef.frames_per_second())
    return np.concatenate(audio), np.concatenate(midi), np.concatenate(owner), np.concatenate(starts_s)


def retrieval_metrics(Q: np.ndarray, C: np.ndarray, hubness_neighbours: int = 0) -> dict:
    """Rank of each query's own candidate (row i ↔ column i) among all candidates: R@1, R@10, MRR, median rank.

    Ranked by cosine similarity, or by :func:`engine.embed.hubness_corrected` similarity (CSLS)
    with ``hubness_neighbours`` > 0.
    """
    S = Q @ C.T
    if hubness_neighbours > 0:
        from engine.embed import hubness_corrected

        S = hubness_corrected(S, hubness_neighbours)
    own = np.diag(S)
    ranks = 1 + (S > own[:, None]).sum(axis=1)
    return {"n": int(len(Q)), "R@1": float(np.mean(ranks <= 1)), "R@10": float(np.mean(ranks <= 10)),
            "MRR": float(np.mean(1.0 / ranks)), "median_rank": float(np.median(ranks))}


def info_nce(za, zm, logit_scale):
    """Symmetric InfoNCE: pair i is the positive of row i and of column i."""
    import torch
    import torch.nn.functional as F

    logits = logit_scale * za @ zm.T
    target = torch.arange(len(za))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def uniformity(z, owner, t: float = 2.0):
    """Wang & Isola's uniformity over pairs of snippets from different pieces (lower = spread out)."""
    import torch

    sq = (2.0 - 2.0 * z @ z.T).clamp_min(0)
    other = torch.as_tensor(owner[:, None] != owner[None, :])
    return torch.log(torch.exp(-t * sq[other]).mean())


def train(config=CONFIG, records=None, log=print):
    """Train both pathways on ``records`` (split into train/validation here); returns models + history."""
    import torch

    from models.embed.net import build_pair

    torch.manual_seed(config["seed"])
    torch.set_num_threads(config["threads"])
    rng = np.random.default_rng(config["seed"])
    order = rng.permutation(len(records))
    n_val = max(8, int(round(config["validation_fraction"] * len(records))))
    val_records = [records[i] for i in sorted(order[:n_val])]
    train_pieces = Pieces([records[i] for i in sorted(order[n_val:])])
    val_pieces = Pieces(val_records)
    log(f"{len(train_pieces)} training pieces, {len(val_pieces)} validation pieces")
    va, vm, _, _ = evaluation_pairs(val_pieces)
    audio_net, midi_net = build_pair(tuple(config["widths"]), config["dropout"])
    logit_scale = torch.nn.Parameter(torch.tensor(float(np.log(config["init_logit_scale"]))))
    params = list(audio_net.parameters()) + list(midi_net.parameters()) + [logit_scale]
    opt = torch.optim.AdamW(params, lr=config["lr"], weight_decay=config["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config["lr"], total_steps=config["steps"], pct_start=0.15)
    history, best, best_state = [], -1.0, None
    t0 = time.time()
    for step in range(1, config["steps"] + 1):
        audio_net.train()
        midi_net.train()
        a, m, owner = sample_batch(train_pieces, rng, config["pieces_per_batch"], config["positions_per_piece"],
                                   config.get("transpose_semitones"), config.get("time_stretch"))
        za, zm = audio_net(torch.from_numpy(a)), midi_net(torch.from_numpy(m))
        loss = info_nce(za, zm, logit_scale.exp().clamp(max=100.0))
        if config["uniformity_weight"]:
            loss = loss + config["uniformity_weight"] * uniformity(zm, owner)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % config["validation_every"] == 0 or step == config["steps"]:
            audio_net.eval()
            midi_net.eval()
            with torch.no_grad():
                qa = audio_net(torch.from_numpy(va)).numpy()
                qm = midi_net(torch.from_numpy(vm)).numpy()
            val = retrieval_metrics(qa, qm)
            history.append({"step": step, "loss": float(loss.detach()), "val_mrr_a2m": val["MRR"], "val_R@1": val["R@1"],
                            "seconds": round(time.time() - t0, 1)})
            log(f"step {step}: loss {float(loss.detach()):.3f}, validation MRR a→m {val['MRR']:.3f} "
                f"(R@1 {val['R@1']:.3f}, n={val['n']}), {time.time() - t0:.0f} s")
            if val["MRR"] > best:
                from models.embed.net import state_to_arrays

                best = val["MRR"]
                best_state = (state_to_arrays(audio_net), state_to_arrays(midi_net), step)
    from models.embed.net import load_arrays

    load_arrays(audio_net, best_state[0])
    load_arrays(midi_net, best_state[1])
    audio_net.eval()
    midi_net.eval()
    return audio_net, midi_net, {"history": history, "best_step": best_state[2], "val_records": val_records,
                                 "train_ids": [r["id"] for r in train_pieces.records]}


def export(model, name: str, n_bins: int, fixture: np.ndarray, extra_metadata: dict, out_dir: Path = MODELS_DIR) -> Path:
    """Write ``<out_dir>/<name>.onnx`` (+ metadata), its weights npz and fixture npz."""
    import torch

    from models.embed.net import EMBED_DIM, state_to_arrays
    from models.onnx_metadata import set_metadata

    path = Path(out_dir) / f"{name}.onnx"
    dummy = torch.zeros(2, 1, n_bins, ef.SNIPPET_FRAMES)
    torch.onnx.export(model, dummy, str(path), input_names=["snippets"], output_names=["embedding"],
                      dynamic_axes={"snippets": {0: "n"}, "embedding": {0: "n"}}, opset_version=17, dynamo=False)
    set_metadata(path, {"feature_version": ef.FEATURE_VERSION, "embed_dim": EMBED_DIM,
                        "snippet_frames": ef.SNIPPET_FRAMES, "hop_length": ef.HOP_LENGTH, "sr": ef.SR,
                        **extra_metadata},
                 "Earworm Studio cross-modal snippet embedding; see models/MODEL_CARD_embed.md")
    np.savez_compressed(path.with_suffix(".weights.npz"), **state_to_arrays(model))
    with torch.no_grad():
        expected = model(torch.from_numpy(fixture)).numpy()
    np.savez_compressed(path.with_suffix(".fixture.npz"), snippets=fixture, embedding=expected,
                        widths=np.array(model.widths))
    return path


def main(config=CONFIG, out_dir: Path = MODELS_DIR) -> dict:
    """Train, calibrate, export to ``out_dir``; evaluate on the test pieces only when that is ``models/``.

    Elsewhere (a candidate) the training record goes to ``<out_dir>/train_info.json``; install a
    candidate by copying its files into ``models/`` and running
    ``python -m models.embed.evaluate --info <out_dir>/train_info.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start, cpu_start = time.time(), time.process_time()
    if not (embed_data.DATA_DIR / "index.json").exists():
        print("building the data set (models.embed.data) …")
        embed_data.build()
    index = embed_data.load_index()
    records = [r for r in index["records"] if r["split"] == "train"]
    audio_net, midi_net, info = train(config, records)
    t_train, cpu_train = time.time() - t_start, time.process_time() - cpu_start
    test = Pieces([r for r in index["records"] if r["split"] == "test"][:1])
    a, m, ok = test.pairs(0, 0, ef.snippet_starts(len(test.renditions[0][0][0]), 40)[:4])
    from models.embed import evaluate

    threshold = evaluate.calibrate_unknown(evaluate.torch_embedder(audio_net), evaluate.torch_embedder(midi_net),
                                           info["val_records"])
    meta = {"unknown_threshold": round(threshold, 4)}
    export(audio_net, "embed_audio", ef.N_AUDIO_BINS, a, meta, out_dir)
    export(midi_net, "embed_midi", ef.N_ROLL_BINS, m, meta, out_dir)
    info.update(config={k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
                train_seconds=round(t_train, 1), train_cpu_seconds=round(cpu_train, 1),
                unknown_threshold=threshold,
                data={"n_pieces": len(index["records"]), "n_train": len(records),
                      "n_test": sum(r["split"] == "test" for r in index["records"]),
                      "build_seconds": index.get("seconds"), "build_reused": index.get("n_reused")})
    info["val_records"] = [r["id"] for r in info["val_records"]]
    if out_dir.resolve() != MODELS_DIR.resolve():
        (out_dir / "train_info.json").write_text(json.dumps(info, indent=1))
        best = max(h["val_mrr_a2m"] for h in info["history"])
        print(f"candidate in {out_dir}: best validation MRR a→m {best:.3f} at step {info['best_step']}")
        return info
    return evaluate.main(info)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Train and export the snippet embeddings.")
    parser.add_argument("--steps", type=int, default=CONFIG["steps"], help="optimiser steps")
    parser.add_argument("--threads", type=int, default=CONFIG["threads"], help="torch CPU threads")
    parser.add_argument("--transpose", type=int, nargs=2, default=CONFIG["transpose_semitones"], metavar=("LO", "HI"),
                        help="semitones of the pairs' random transposition (inclusive; 0 0 = off)")
    parser.add_argument("--stretch", type=float, nargs=2, default=CONFIG["time_stretch"], metavar=("LO", "HI"),
                        help="range of the pairs' random time stretch (1 1 = off)")
    parser.add_argument("--out", type=Path, default=MODELS_DIR,
                        help="where the models go; anywhere but models/ is a candidate: no test evaluation")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="override another CONFIG entry, e.g. --set dropout=0.3")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in CONFIG:
            parser.error(f"--set {item}: no CONFIG entry {key!r} (entries: {', '.join(CONFIG)})")
        overrides[key] = json.loads(value)
    main({**CONFIG, "steps": args.steps, "threads": args.threads, "transpose_semitones": tuple(args.transpose),
          "time_stretch": tuple(args.stretch), **overrides}, args.out)
