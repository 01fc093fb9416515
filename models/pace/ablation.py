"""What the changes to the seed recipe buy, on the held-out songs: ``python -m models.pace.ablation``.

The seed recipe classified one clip at a random phase from the mel view alone. Ours adds band
spectral-flux channels, the periodicity vector (the song's autocorrelation at simple multiples
of the candidate period) and averages the logits of ``N_CLIPS`` fixed clip placements. Variants,
all with the same data, recipe, epochs and seed, evaluated with 1 clip and with ``N_CLIPS``:

- seed-like: band energies only (flux channels and periodicity zeroed);
- + flux: energies and flux, periodicity zeroed;
- ours: everything (``models/pace.onnx`` itself).

Writes models/pace/ablations.json and re-renders the model card. Trains two extra models
(about as long as the main training each); ``--only seed`` trains one, and
``--flux-model FILE.onnx`` takes the "+ band flux" row from an already trained clips-only model
(the first version of this recipe, identical but for the periodicity branch).
"""
from __future__ import annotations

import argparse
import json
import time

from engine import pace as engine_pace
from engine.text import count_noun
from models.pace import data as pace_data
from models.pace.card import write_card
from models.pace.evaluate import summarize
from models.pace.train import CONFIG, MODELS_DIR, Songs, onnx_fn, predict, train

VARIANTS = {"seed-like: band energies only": ("energy",), "+ band flux": ("energy", "flux")}
ABLATIONS = MODELS_DIR / "pace" / "ablations.json"


def main(argv=None) -> dict:
    import torch

    ap = argparse.ArgumentParser(description="ablation of the pace classifier")
    ap.add_argument("--only", choices=["seed", "flux"], help="train only this variant (others kept from the file)")
    ap.add_argument("--flux-model", help="a clips-only ONNX model for the '+ band flux' row (not retrained)")
    args = ap.parse_args(argv)
    records = pace_data.load_index()["records"]
    test = Songs([r for r in records if r["split"] == "test"])
    info = json.loads(ABLATIONS.read_text()) if ABLATIONS.exists() else {"variants": {}, "seconds": {}}
    clip_counts = (1, engine_pace.N_CLIPS)
    fn = onnx_fn(MODELS_DIR / "pace.onnx")
    for n in clip_counts:
        info["variants"][f"ours: + periodicity, {count_noun(n, 'clip')}"] = summarize(
            predict(fn, test, CONFIG["inputs"], n_clips=n))
    if args.flux_model:
        import onnxruntime as ort

        sess = ort.InferenceSession(args.flux_model, providers=["CPUExecutionProvider"])
        for n in clip_counts:
            info["variants"][f"+ band flux, {count_noun(n, 'clip')}"] = summarize(predict(
                lambda clips, periodicity: sess.run(None, {"clips": clips})[0], test, ("energy", "flux"), n_clips=n))
        info["seconds"]["+ band flux"] = "from " + args.flux_model
    for key, (name, inputs) in zip(("seed", "flux"), VARIANTS.items()):
        if args.only and args.only != key:
            continue
        t0 = time.time()
        model, _, _ = train(dict(CONFIG, inputs=inputs), [r for r in records if r["split"] == "train"])

        def torch_fn(clips, periodicity, model=model):
            with torch.no_grad():
                return model(torch.from_numpy(clips), torch.from_numpy(periodicity)).numpy()

        for n in clip_counts:
            info["variants"][f"{name}, {count_noun(n, 'clip')}"] = summarize(predict(torch_fn, test, inputs, n_clips=n))
        info["seconds"][name] = time.time() - t0
    order = [f"{name}, {count_noun(n, 'clip')}"
             for name in list(VARIANTS) + ["ours: + periodicity"] for n in clip_counts]
    info["variants"] = {k: info["variants"][k] for k in order if k in info["variants"]}
    info["note"] = ("Same data, recipe, epochs and seed; a variant zeroes the inputs it does without. "
                    "Held-out test songs; the clip count is the number of clips averaged per candidate at inference.")
    ABLATIONS.write_text(json.dumps(info, indent=1))
    write_card(json.loads((MODELS_DIR / "pace" / "metrics.json").read_text()))
    for name, m in info["variants"].items():
        print(f"{name:45s} cand {m['accuracy_candidates']:.3f} metrical {m['accuracy_metrical']:.3f} "
              f"P {m['set_precision']:.3f} R {m['set_recall']:.3f}")
    return info


if __name__ == "__main__":
    main()
