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
else
    echo "real data folder $REAL absent: skipping the real-catalogue demo" >&2
fi
