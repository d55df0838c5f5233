#!/usr/bin/env bash
# Make .venv if missing, install cmcat, and run the main job end to end on the embedded database.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" ""
set -x
cmcat db upgrade
cmcat db status

# Real catalogues (if present): ingest, cross-match to X-ray/SZ masses, the richness baseline.
REAL="${CMCAT_REAL_DATA_DIR:-$ROOT/../shared/data/real}"
if [ -d "$REAL/clusterdb" ]; then
    cmcat ingest redmapper "$REAL/clusterdb/sdss_redmapper.csv.gz"
    cmcat ingest mcxc "$REAL/clusterdb/mcxc.csv.gz"
    cmcat ingest psz2 "$REAL/HFI_PCCS_SZ-union_R2.08.fits"
    cmcat crossmatch
    cmcat baseline
    cmcat status
    # The two-stage CNN, quick config (cutouts rendered by the mock renderer: no SDSS download),
    # then richness baseline vs CNN vs hybrid on the same folds.
    cmcat train --config quick --source mock
    cmcat evaluate hybrid
    # Masses, one Dask task per HEALPix tile (docs/pipeline.md; running it again does nothing), then
    # the 20 richest clusters with their X-ray/SZ masses in SQL (`fold`: a cluster whose label trained
    # the model has the prediction of the fold that held it out; NULL for the others; `err`: the
    # calibrated 1-sigma error; log_m500_population: the posterior mass for the catalogue population,
    # calibrated on mock universes and too low on the real catalogue, docs/model.md). By default four order-2 tiles
    # (~2,600 clusters, minutes on 2 cores); CMCAT_DEMO_TILES=3 predicts the whole catalogue
    # (26,350 clusters, rendering every cutout: 12 min 18 s on 2 cores, measured 2026-11-25).
    cmcat predict --tiles "${CMCAT_DEMO_TILES:-2:70,71,76,78}" --model hybrid --source mock
    cmcat sql "SELECT c.name, round(c.z::numeric, 3) AS z, round(c.richness::numeric, 1) AS lambda,
                      round(p.log10_m500::numeric, 3) AS log_m500, round(p.log10_m500_err::numeric, 3) AS err,
                      round(p.population_log10_m500::numeric, 3) AS log_m500_population, p.fold, round(l.log10_m500::numeric, 3) AS log_m500_xray_sz, l.source
               FROM clusters c JOIN predictions p ON p.cluster_id = c.id
               LEFT JOIN labels l ON l.cluster_id = c.id
               WHERE p.model_id = (SELECT max(id) FROM models WHERE kind = 'hybrid')
               ORDER BY c.richness DESC LIMIT 20"
else
    echo "real data folder $REAL absent: skipping the real-catalogue demo" >&2
fi
