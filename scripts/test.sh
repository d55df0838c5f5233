#!/usr/bin/env bash
# Make .venv if missing, install cmcat with its test extras, run pytest (arguments pass through).
#   scripts/test.sh                 the default suite (slow tests excluded)
#   scripts/test.sh -m ''           everything, slow tests included (what CI runs)
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" "[test]"
exec python -m pytest "$@"
