"""The pace-compatibility CNN (PyTorch; training only — the engine runs the ONNX export).

Inputs: ``clips`` (N, C, N_BEATS, STEPS_PER_BEAT) beat-synchronous clips (engine.pace.beat_clips)
and ``periodicity`` (N, PERIODICITY_CHANNELS, n_ratios): the song's autocorrelation at simple
multiples of the candidate period (engine.pace.periodicity_features).
Output: (N, 2) logits: [compatible with the candidate pace, the candidate is the notated beat].
:class:`PaceEnsemble` averages the logits of PaceNets trained alike from different seeds (one ONNX
graph; ``python -m models.pace.train --seeds 0,1,2``). Tried in session 25 and not shipped: the model
card says why.

Narrow convolutions alternate along time-within-beat (1×k: the rhythm inside a beat) and across
beats (k×1: does the next beat look the same, i.e. do the onsets stay in their columns), each
followed by batch norm; dropout between blocks; global mean+max pooling makes the decision
independent of where in the beat the clip started. The periodicity vector goes through a small
MLP and joins the pooled clip features before the output layer.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _block(c_in, c_out, kernel):
    pad = (kernel[0] // 2, kernel[1] // 2)
    return [nn.Conv2d(c_in, c_out, kernel, padding=pad, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class PaceNet(nn.Module):
    """Small CNN; ``widths`` are the channel counts of the three stages."""

    def __init__(self, in_channels: int = 16, widths=(16, 24, 32), dropout: float = 0.1, head_dropout: float = 0.3,
                 n_outputs: int = 2, periodicity_size: int = 9 * 13, periodicity_width: int = 48):
        super().__init__()
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            *_block(in_channels, w1, (1, 5)), *_block(w1, w1, (3, 1)),
            nn.MaxPool2d((1, 2)), nn.Dropout(dropout),
            *_block(w1, w2, (1, 3)), *_block(w2, w2, (3, 1)),
            nn.MaxPool2d((2, 2)), nn.Dropout(dropout),
            *_block(w2, w3, (3, 3)),
        )
        self.periodicity = nn.Sequential(nn.Flatten(), nn.Linear(periodicity_size, periodicity_width),
                                         nn.BatchNorm1d(periodicity_width), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(2 * w3 + periodicity_width, n_outputs))

    def forward(self, clips: torch.Tensor, periodicity: torch.Tensor) -> torch.Tensor:
        h = self.features(clips)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3)), self.periodicity(periodicity)], dim=1)
        return self.head(pooled)


class PaceEnsemble(nn.Module):
    """Members trained alike from different seeds; the output is the mean of their logits.

    Why: models of the same recipe disagree on a few songs' meters (held-out Acc2 0.970–0.982
    across seeds); averaging keeps what they agree on and shrinks that spread. Each member costs
    as much as the single model at inference (the benchmark asks ≥ 200 candidates/s)."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, clips: torch.Tensor, periodicity: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(clips, periodicity) for m in self.members]).mean(dim=0)


def state_to_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's state as plain arrays (saved as .npz: no pickle)."""
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def load_arrays(model: nn.Module, arrays) -> nn.Module:
    """Load a state saved by :func:`state_to_arrays` (a dict or an open npz)."""
    state = {k: torch.from_numpy(np.asarray(arrays[k])) for k in model.state_dict()}
    model.load_state_dict(state)
    return model
