"""The networks of the two-stage method, in plain torch (no torchvision).

- `Trunk`: a small ResNet-style convolutional trunk mapping one single-band image
  (N, 1, H, W) to a feature vector (N, trunk.n_features). `trunk.last_conv` is its last
  convolution and `trunk.feature_map(x)` its last activation map (for Grad-CAM).
- `BandClassifier` (stage 1): trunk + linear layer -> 5 band logits (u, g, r, i, z).
- `MassHead` (stage 2): regression head on the concatenated features of the 5 bands (and the
  cross-band features of `band_features`, where the pooling asks for them); the
  hybrid variant also takes the standardised catalogue inputs (those of the richness baseline:
  log10 lambda, x = log10((1+z)/1.35), x^2) and has a linear term in them, so it starts from the
  richness relation and learns corrections.
- `MassRegressor`: the stage-2 forward from the five band images, trunk + head, used for
  fine-tuning and explanations: (N, 5, H, W) [+ (N, N_AUX) aux] -> (N,) log10 M500.
"""

from __future__ import annotations

import torch
from torch import nn

N_BANDS = 5
N_AUX = 3  # hybrid inputs: log10(lambda / 40), x = log10((1 + z) / 1.35), x^2 (heads saved before x^2 read 2)


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


#: Poolings of each band's last activation map into that band's features: global mean, global
#: max, the mean over the central half of the map (the cluster core, where the member galaxies
#: concentrate), and "rings", the means in N_RINGS annuli about the cutout centre (radial structure
#: that a global pooling averages away).
BAND_POOLINGS = ("mean", "max", "centre", "rings")
#: Cross-band poolings: at each position of the last map, the difference of adjacent bands' channel
#: vectors (u-g, g-r, r-i, i-z; the map analogue of a galaxy's colours, which the per-band poolings
#: never compare) rectified into both signs, ReLU(d) and ReLU(-d), then pooled as named here
#: ("colour": global mean; "colour_rings": the ring means). No weights: stage 2 may add them to a
#: frozen stage-1 trunk.
COLOUR_POOLINGS = {"colour": "mean", "colour_rings": "rings"}
POOLINGS = BAND_POOLINGS + tuple(COLOUR_POOLINGS)
#: Annuli of "rings": edges at 1/3 and 2/3 of the map's half-side, radii measured at position
#: centres (on 1.5 Mpc cutouts: < 0.25, 0.25-0.5 and > 0.5 Mpc, the last reaching the corners).
N_RINGS = 3


def _ring_weights(h: int, w: int) -> torch.Tensor:
    """(N_RINGS, h, w) weights whose sum over a map is that annulus' mean; ValueError if one is empty."""
    yy, xx = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij")
    r = torch.sqrt(yy**2 + xx**2) / (min(h, w) / 2)
    ring = torch.clamp((r * N_RINGS).long(), max=N_RINGS - 1)
    masks = torch.stack([(ring == k).float() for k in range(N_RINGS)])
    counts = masks.sum(dim=(1, 2), keepdim=True)
    if (counts == 0).any():
        raise ValueError(f"a {h}x{w} feature map is too small for {N_RINGS} rings: use a larger grid.size")
    return masks / counts


def _pool(fmap: torch.Tensor, how: str) -> torch.Tensor:
    """(N, C, h, w) map -> (N, F) features of one per-band pooling (F = C, or N_RINGS * C ring-major)."""
    if how == "mean":
        return fmap.mean(dim=(2, 3))
    if how == "max":
        return fmap.amax(dim=(2, 3))
    if how == "centre":
        h, w = fmap.shape[-2:]
        return fmap[..., h // 4: h - h // 4, w // 4: w - w // 4].mean(dim=(2, 3))
    if how == "rings":
        weights = _ring_weights(*fmap.shape[-2:]).to(fmap)
        return torch.einsum("nchw,khw->nkc", fmap, weights).flatten(1)
    raise ValueError(f"unknown pooling {how!r}; expected one of {', '.join(POOLINGS)}")


def _width(how: str, channels: int) -> int:
    """Features of the per-band pooling `how` on a map of `channels` channels."""
    return N_RINGS * channels if how == "rings" else channels


class Trunk(nn.Module):
    """Stem (5x5, stride 2) + stages of ResBlocks (width w, 2w, 4w...; stride 2 between stages).

    Features of one image: the per-band `pooling` statistics (BAND_POOLINGS) of the last activation
    map, concatenated (n_features of them). The cross-band poolings (COLOUR_POOLINGS) in `pooling`
    need all five bands and are added by `band_features` (n_colour_features); `n_cluster_features`
    is what `band_features` returns per cluster. A 64x64 input gives an 8x8 last map with 3 stages.
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
        self.n_features = sum(_width(how, c_in) for how in self.pooling if how in BAND_POOLINGS)
        self.n_colour_features = sum((N_BANDS - 1) * _width(COLOUR_POOLINGS[how], 2 * c_in)
                                     for how in self.pooling if how in COLOUR_POOLINGS)
        self.n_cluster_features = N_BANDS * self.n_features + self.n_colour_features

    @property
    def last_conv(self) -> nn.Conv2d:
        """The last convolution of the trunk (Grad-CAM target layer)."""
        return self.stages[-1].conv2

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) normalised images -> (N, C, H/8, W/8) last activation map."""
        return self.stages(self.stem(x))

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) last maps of single images -> (N, n_features) per-band features."""
        return torch.cat([_pool(fmap, how) for how in self.pooling if how in BAND_POOLINGS]
                         or [fmap.new_zeros(len(fmap), 0)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(x))


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
    """Stage 2 head: standardised band features (N, 5F) [+ aux (N, N_AUX)] -> log10 M500 (N,).

    Features and aux inputs are standardised with stored buffers (set from the training fold
    by `set_scaling`); the output is `y_mean + y_std * net(...)`. `hidden=0` makes the head
    linear (a ridge regression, fitted in closed form; the hybrid's aux terms unpenalised).
    A head reads the first `n_aux` aux columns: heads saved before the z^2 input have 2.
    """

    def __init__(self, n_in: int, hidden: int = 64, dropout: float = 0.3, hybrid: bool = False,
                 n_aux: int = N_AUX) -> None:
        super().__init__()
        self.hybrid = hybrid
        self.n_aux = n_aux
        n_aux_in = n_aux if hybrid else 0
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        self.register_buffer("aux_mean", torch.zeros(n_aux))
        self.register_buffer("aux_std", torch.ones(n_aux))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))
        if hidden > 0:
            self.net = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(n_in + n_aux_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
            )
            self.linear_aux = nn.Linear(n_aux, 1) if hybrid else None
        else:  # linear head (fitted in closed form by clustermass.model.train.fit_ridge)
            self.net = nn.Linear(n_in + n_aux_in, 1)
            self.linear_aux = None

    @torch.no_grad()
    def set_scaling(self, feats: torch.Tensor, aux: torch.Tensor | None, y: torch.Tensor) -> None:
        """Standardise inputs and target with the statistics of a training set."""
        self.mean.copy_(feats.mean(0))
        self.std.copy_(feats.std(0).clamp_min(1e-6))
        if aux is not None:
            self.aux_mean.copy_(aux[:, : self.n_aux].mean(0))
            self.aux_std.copy_(aux[:, : self.n_aux].std(0).clamp_min(1e-6))
        self.y_mean.copy_(y.mean())
        self.y_std.copy_(y.std().clamp_min(1e-6))

    def forward(self, feats: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        x = (feats - self.mean) / self.std
        if self.hybrid:
            if aux is None:
                raise ValueError("the hybrid head needs aux inputs (log10 lambda, z)")
            a = (aux[:, : self.n_aux] - self.aux_mean) / self.aux_std
            out = self.net(torch.cat([x, a], dim=1))
            if self.linear_aux is not None:
                out = out + self.linear_aux(a)
        else:
            out = self.net(x)
        return self.y_mean + self.y_std * out.squeeze(1)


def band_features(trunk: Trunk, images: torch.Tensor) -> torch.Tensor:
    """(N, 5, H, W) normalised ugriz images -> (N, trunk.n_cluster_features) features: the 5 bands'
    per-band features concatenated in band order, then the cross-band ones (pooling order, then
    the pairs u-g, g-r, r-i, i-z, then ReLU(d) before ReLU(-d))."""
    n, b, h, w = images.shape
    fmap = trunk.feature_map(images.reshape(n * b, 1, h, w))
    feats = [trunk.pool(fmap).reshape(n, b * trunk.n_features)]
    colours = [how for how in trunk.pooling if how in COLOUR_POOLINGS]
    if colours:
        maps = fmap.reshape(n, b, *fmap.shape[1:])
        d = maps[:, :-1] - maps[:, 1:]  # (N, 4, C, h, w): adjacent bands at each position
        rect = torch.cat([torch.relu(d), torch.relu(-d)], dim=2).flatten(0, 1)
        feats += [_pool(rect, COLOUR_POOLINGS[how]).reshape(n, -1) for how in colours]
    return torch.cat(feats, dim=1)


class MassRegressor(nn.Module):
    """Stage 2 end to end: five band images through the trunk, then the head."""

    def __init__(self, trunk: Trunk, head: MassHead) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, images: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 5, H, W) normalised images [+ (N, N_AUX) aux] -> (N,) log10 M500."""
        return self.head(band_features(self.trunk, images), aux)
