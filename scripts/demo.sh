#!/usr/bin/env bash
# Make .venv if missing, install cmcat, and run the main job end to end on the embedded database.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" ""
set -x
cmcat db upgrade
cmcat db status
