"""Corrupt state on disk: a cutout store file or a model weights file changed behind cmcat's back
is caught by its sha256 and refetched (cutouts) or refused (weights), never used."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sqlalchemy import text

from clustermass import sky
from clustermass.errors import ModelError
from clustermass.images.store import read_store
from clustermass.model import registry
from clustermass.model.networks import MassHead, Trunk
from clustermass.pipeline.predict import predict_tile
from clustermass.pipeline.worker import worker_settings
from clustermass.pipeline.runner import execute_tile
from clustermass.pipeline.runs import prepare_run

from pipeline_helpers import add_clusters, add_model, run_tiles_status, tiny_loader


def _store_rows(db) -> list:
    with db.connect() as conn:
        return conn.execute(text("SELECT cluster_id, path, sha256, status FROM cutouts ORDER BY cluster_id")).all()


def _run_all(db, args: dict, rerun: bool) -> int:
    url = db.url.render_as_string(hide_password=False)
    run_id, _, todo, *_ = prepare_run(db, "predict", sky.TileSpec(5), args, rerun=rerun)
    for t in todo:
        assert execute_tile(predict_tile, url, run_id, t.norder, t.npix, {**args, "loader": tiny_loader}).status == "done"
    return run_id


def test_changed_cutout_files_are_refetched_never_used(db, settings):
    clusters = add_clusters(db, 12, ra=(30.0, 31.0), dec=(10.0, 11.0))
    args = {"model_id": add_model(db), "settings": worker_settings(settings),
            "source": "mock", "source_options": {"seed": 3}}
    _run_all(db, args, rerun=False)
    rows = _store_rows(db)
    assert len(rows) == 12 and {r.status for r in rows} <= {"ok", "partial"}
    files = sorted({(r.path, r.sha256) for r in rows})
    assert len(files) >= 2, "the clusters should span several tiles"
    good = {cid: e[0].copy() for p, s in files for cid, e in read_store(p, s).items()}
    # one file with a byte flipped (same size), one cut short, one replaced by another valid store file
    damaged = {}
    originals = {path: open(path, "rb").read() for path, _ in files}
    for k, (path, _) in enumerate(files[:3]):
        raw = bytearray(originals[path])
        if k == 0:
            raw[len(raw) // 2] ^= 0xFF
        elif k == 1:
            raw = raw[: len(raw) // 2]
        else:
            raw = bytearray(originals[files[0][0]])  # valid npz, other clusters
        open(path, "wb").write(bytes(raw))
        damaged[path] = bytes(raw)
        assert read_store(path, dict(files)[path]) is None  # the checksum refuses it
    _run_all(db, args, rerun=True)
    after = _store_rows(db)
    assert [r.cluster_id for r in after] == sorted(clusters["id"])
    for path, sha in {(r.path, r.sha256) for r in after}:
        entries = read_store(path, sha)
        assert entries is not None, f"{path} does not match its recorded checksum"
        if path in damaged:
            assert open(path, "rb").read() != damaged[path]  # rewritten, not reused
        for cid, (data, _, _) in entries.items():
            np.testing.assert_array_equal(data, good[cid])  # the re-rendered cutouts, not the damaged bytes
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 12


def _tiny_cnn(db, settings) -> registry.ModelRecord:
    torch.manual_seed(0)
    trunk = Trunk(width=4, blocks=(1, 1))
    arch = {"width": 4, "blocks": [1, 1], "n_in": 5 * trunk.n_features, "hidden": 8, "dropout": 0.0}
    heads = [MassHead(arch["n_in"], hidden=8, dropout=0.0) for _ in range(2)]
    return registry.save_model(
        db, settings, name="cnn-tiny", kind="cnn",
        config={"arch": arch, "grid": {"size": 16, "aperture_mpc": 1.5, "aperture_arcsec": None}, "softening": 3.0,
                "tta": False},
        metrics={"cv_scatter": 0.2}, training={},
        weights={"trunk": trunk.state_dict(), "heads": [h.state_dict() for h in heads]},
    )


@pytest.mark.parametrize("damage", ["flip", "truncate", "other_weights"])
def test_changed_weights_are_refused(db, settings, damage):
    rec = _tiny_cnn(db, settings)
    path = registry.weights_file(settings, rec)
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[-100] ^= 0x01
    elif damage == "truncate":
        raw = raw[:-10]
    else:  # a valid weights file of the same architecture, different numbers
        torch.manual_seed(1)
        trunk = Trunk(width=4, blocks=(1, 1))
        heads = [MassHead(5 * trunk.n_features, hidden=8, dropout=0.0) for _ in range(2)]
        torch.save({"format": registry.WEIGHTS_FORMAT, "kind": "cnn", "trunk": trunk.state_dict(),
                    "heads": [h.state_dict() for h in heads]}, path)
        raw = bytearray(path.read_bytes())
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="fail the checksum"):
        registry.load_predictor(db, settings, rec.id)
    # through the pipeline: every tile fails with the reason, nothing is predicted
    add_clusters(db, 6, ra=(40.0, 40.5), dec=(0.0, 0.5))
    args = {"model_id": rec.id, "settings": worker_settings(settings), "source": "mock", "source_options": {}}
    url = db.url.render_as_string(hide_password=False)
    run_id, _, todo, *_ = prepare_run(db, "predict", sky.TileSpec(3), args)
    for t in todo:
        assert execute_tile(predict_tile, url, run_id, t.norder, t.npix, args).status == "failed"
    st = run_tiles_status(db, run_id)
    assert (st["status"] == "failed").all() and st["error"].str.contains("fail the checksum").all()
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 0
