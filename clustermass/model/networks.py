"""The networks of the two-stage method, in plain torch (no torchvision).

- `Trunk`: a small ResNet-style convolutional trunk mapping one single-band image
  (N, 1, H, W) to a feature vector (N, trunk.n_features). `trunk.last_conv` is its last
  convolution and `trunk.feature_map(x)` its last activation map (for Grad-CAM).
- `BandClassifier` (stage 1): trunk + linear layer -> 5 band logits (u, g, r, i, z).
- `MassHead` (stage 2): regression head on the concatenated features of the 5 bands; the
  hybrid variant also takes the standardised catalogue inputs (log10 lambda, z) and has a
  linear term in them, so it starts from a richness-like relation and learns corrections.
- `MassRegressor`: the stage-2 forward from the five band images, trunk + head, used for
  fine-tuning and explanations: (N, 5, H, W) [+ (N, 2) aux] -> (N,) log10 M500.
"""

from __future__ import annotations

import torch
from torch import nn

N_BANDS = 5
N_AUX = 2  # hybrid inputs: log10(lambda / 40), log10((1 + z) / 1.35)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 strided) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.short(x))


#: Poolings of the last activation map into features: global mean, global max, and the mean
#: over the central half of the map (the cluster core, where the member galaxies concentrate).
POOLINGS = ("mean", "max", "centre")


def _pool(fmap: torch.Tensor, how: str) -> torch.Tensor:
    if how == "mean":
        return fmap.mean(dim=(2, 3))
    if how == "max":
        return fmap.amax(dim=(2, 3))
    if how == "centre":
        h, w = fmap.shape[-2:]
        return fmap[..., h // 4: h - h // 4, w // 4: w - w // 4].mean(dim=(2, 3))
    raise ValueError(f"unknown pooling {how!r}; expected one of {', '.join(POOLINGS)}")


class Trunk(nn.Module):
    """Stem (5x5, stride 2) + stages of ResBlocks (width w, 2w, 4w...; stride 2 between stages).

    Features: the `pooling` statistics (see POOLINGS) of the last activation map, concatenated
    (n_features = len(pooling) x channels). A 64x64 input gives an 8x8 last map with 3 stages.
    Pooling has no weights, so stage 2 may pool the stage-1 trunk differently.
    """

    def __init__(self, width: int = 16, blocks: tuple[int, ...] = (1, 1, 1), pooling: tuple[str, ...] = ("mean", "max")) -> None:
        super().__init__()
        self.width = width
        self.blocks = tuple(blocks)
        self.pooling = tuple(pooling)
        for how in self.pooling:
            if how not in POOLINGS:
                raise ValueError(f"unknown pooling {how!r}; expected one of {', '.join(POOLINGS)}")
        self.stem = nn.Sequential(nn.Conv2d(1, width, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers: list[nn.Module] = []
        c_in = width
        for i, n in enumerate(self.blocks):
            c_out = width * 2**i
            for j in range(n):
                layers.append(ResBlock(c_in, c_out, stride=2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.stages = nn.Sequential(*layers)
        self.n_channels = c_in
        self.n_features = len(self.pooling) * c_in

    @property
    def last_conv(self) -> nn.Conv2d:
        """The last convolution of the trunk (Grad-CAM target layer)."""
        return self.stages[-1].conv2

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) normalised images -> (N, C, H/8, W/8) last activation map."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.feature_map(x)
        return torch.cat([_pool(fmap, how) for how in self.pooling], dim=1)


class BandClassifier(nn.Module):
    """Stage 1: which band (0..4 = u, g, r, i, z) a single-band image was taken in."""

    def __init__(self, trunk: Trunk) -> None:
        super().__init__()
        self.trunk = trunk
        self.fc = nn.Linear(trunk.n_features, N_BANDS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N, 5) logits."""
        return self.fc(self.trunk(x))


class MassHead(nn.Module):
    """Stage 2 head: standardised band features (N, 5F) [+ aux (N, 2)] -> log10 M500 (N,).

    Features and aux inputs are standardised with stored buffers (set from the training fold
    by `set_scaling`); the output is `y_mean + y_std * net(...)`. `hidden=0` makes the head
    linear (a ridge regression, fitted in closed form; the hybrid's aux terms unpenalised).
    """

    def __init__(self, n_in: int, hidden: int = 64, dropout: float = 0.3, hybrid: bool = False) -> None:
        super().__init__()
        self.hybrid = hybrid
        n_aux = N_AUX if hybrid else 0
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        self.register_buffer("aux_mean", torch.zeros(N_AUX))
        self.register_buffer("aux_std", torch.ones(N_AUX))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))
        if hidden > 0:
            self.net = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(n_in + n_aux, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
            )
            self.linear_aux = nn.Linear(N_AUX, 1) if hybrid else None
        else:  # linear head (fitted in closed form by clustermass.model.train.fit_ridge)
            self.net = nn.Linear(n_in + n_aux, 1)
            self.linear_aux = None

    @torch.no_grad()
    def set_scaling(self, feats: torch.Tensor, aux: torch.Tensor | None, y: torch.Tensor) -> None:
        """Standardise inputs and target with the statistics of a training set."""
        self.mean.copy_(feats.mean(0))
        self.std.copy_(feats.std(0).clamp_min(1e-6))
        if aux is not None:
            self.aux_mean.copy_(aux.mean(0))
            self.aux_std.copy_(aux.std(0).clamp_min(1e-6))
        self.y_mean.copy_(y.mean())
        self.y_std.copy_(y.std().clamp_min(1e-6))

    def forward(self, feats: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        x = (feats - self.mean) / self.std
        if self.hybrid:
            if aux is None:
                raise ValueError("the hybrid head needs aux inputs (log10 lambda, z)")
            a = (aux - self.aux_mean) / self.aux_std
            out = self.net(torch.cat([x, a], dim=1))
            if self.linear_aux is not None:
                out = out + self.linear_aux(a)
        else:
            out = self.net(x)
        return self.y_mean + self.y_std * out.squeeze(1)


def band_features(trunk: Trunk, images: torch.Tensor) -> torch.Tensor:
    """(N, 5, H, W) normalised ugriz images -> (N, 5 * F) features, bands concatenated in order."""
    n, b, h, w = images.shape
    return trunk(images.reshape(n * b, 1, h, w)).reshape(n, b * trunk.n_features)


class MassRegressor(nn.Module):
    """Stage 2 end to end: five band images through the trunk, then the head."""

    def __init__(self, trunk: Trunk, head: MassHead) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, images: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 5, H, W) normalised images [+ (N, 2) aux] -> (N,) log10 M500."""
        return self.head(band_features(self.trunk, images), aux)
