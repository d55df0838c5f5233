"""What the pipeline needs from a trained model, whatever its kind.

`cmcat predict` (and explain, export...) only see this protocol; the registry returns an
object that satisfies it for every model kind (the CNN/hybrid fold ensembles, the richness
baseline, and trivial models used in load tests).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from clustermass.images.base import CutoutGrid
from clustermass.model.population import PopulationCalibration


class MassPredictor(Protocol):
    """A loaded model that maps clusters (and their ugriz cutouts) to log10 M500."""

    model_id: int
    name: str
    #: The cutout grid the model was trained on (size, aperture); predict needs the same.
    grid: CutoutGrid
    #: False for models that use only catalogue columns (e.g. the richness baseline).
    needs_images: bool
    #: A second, finer grid whose cutouts `predict` needs as `fine` (the BCG fits); None: none.
    fine_grid: CutoutGrid | None
    #: The forward relation that turns `predict`'s scores into masses for the catalogue's population
    #: (model.population), written beside them; None: the model has none.
    population: PopulationCalibration | None

    def predict(self, images: np.ndarray | None, clusters: pd.DataFrame,
                fine: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """log10(M500/Msun) as regressed on the labelled clusters (the score), and its 1-sigma error
        (dex) per cluster (`population` turns scores into masses for the catalogue population).

        images: (N, 5, size, size) float32 nanomaggies in ugriz order (None if not needs_images);
        fine: the same clusters' cutouts on `fine_grid` (None if it is None);
        clusters: N rows with at least id, ra, dec, z, richness. A cluster whose label trained the
        model gets the prediction of the fold model that held it out (see `folds`).
        """
        ...

    def folds(self, cluster_ids: np.ndarray) -> np.ndarray:
        """(N,) int: the cross-validation fold that held each cluster out and predicts it, -1 for
        clusters whose label was not used in training (they get the full model's prediction)."""
        ...
