"""The two embedding pathways (PyTorch; training only — the engine runs the ONNX exports).

Each pathway maps one snippet, ``(N, 1, n_bins, SNIPPET_FRAMES)`` (pitch × time, see
:mod:`engine.embed_features`), to an L2-normalised 32-d vector; the audio pathway reads 100
semitone bins of a log-frequency spectrogram, the MIDI pathway 88 piano-roll keys. Both are the
same small VGG-style CNN (Dorfer et al. 2018 used two such pathways for sheet music and audio):
three stages of a 3×3 convolution with batch norm and ELU, each followed by 2×2 max pooling over
pitch and time, then an average over time only — absolute pitch is kept, because a piece played a
fifth higher is another piece to a library — flattened into a linear layer to the embedding.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine import embed_features as ef

EMBED_DIM = 32
DEFAULT_WIDTHS = (24, 48, 64)  # channels of the three conv blocks (the recipe's CONFIG names its own)


def _conv(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ELU(inplace=True)]


class SnippetEncoder(nn.Module):
    """One pathway: snippet (N, 1, n_bins, T) → unit vector (N, EMBED_DIM)."""

    def __init__(self, n_bins: int, widths=DEFAULT_WIDTHS, embed_dim: int = EMBED_DIM, dropout: float = 0.1):
        super().__init__()
        self.widths = tuple(int(w) for w in widths)  # exported with the weights: the net to rebuild them into
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            *_conv(1, w1), nn.MaxPool2d(2),
            *_conv(w1, w2), nn.MaxPool2d(2),
            *_conv(w2, w3), nn.MaxPool2d(2),
            nn.Dropout(dropout),
        )
        n_pitch = n_bins // 8
        self.head = nn.Linear(w3 * n_pitch, embed_dim)

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:
        h = self.features(snippets).mean(dim=3)  # average over time, keep pitch
        z = self.head(h.flatten(1))
        return z / z.norm(dim=1, keepdim=True).clamp_min(1e-6)


def build_pair(widths=DEFAULT_WIDTHS, dropout: float = 0.1) -> tuple[SnippetEncoder, SnippetEncoder]:
    """(audio encoder, MIDI encoder)."""
    return (SnippetEncoder(ef.N_AUDIO_BINS, widths, dropout=dropout),
            SnippetEncoder(ef.N_ROLL_BINS, widths, dropout=dropout))


def state_to_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's state as plain arrays (saved as .npz: no pickle)."""
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def load_arrays(model: nn.Module, arrays) -> nn.Module:
    """Load a state saved by :func:`state_to_arrays` (a dict or an open npz)."""
    model.load_state_dict({k: torch.from_numpy(np.asarray(arrays[k])) for k in model.state_dict()})
    return model
