"""The accuracy study: a frozen config on fresh mock universes, scored against labels and truth.

For each seed (default 125, 126, 127) and the control variant (`--control-seed`, default 125),
in its own folder WORK/<run>/ with its own embedded database (WORK/<run>/data): make a mock
universe (`cmcat mock universe --n 26350`), ingest its catalogues, cross-match, train the config
(`cmcat train --config bcg --seed 0`, cutouts rendered with the universe's seed), register the
oracles on the trained hybrid's clusters and folds (`cmcat mock oracle --model hybrid`), predict
the hybrid's masses in every tenth order-3 tile (`cmcat predict`, ~10% of the catalogue), and
evaluate against labels and truth (`cmcat evaluate hybrid --truth`, with the unlabelled clusters'
rows: masses and population masses against the true masses). Then print one table: per run
and pooled over the default-variant seeds (mean, standard deviation over seeds), each model's MAE
ratio to richness and G (the fraction of the oracle's gain over richness) against labels and truth
with their paired bootstrap intervals, error coverage, stage-1 band accuracy and wall time.

Rules of the study (docs/model.md, "The accuracy study"):
- The config is frozen: the committed `bcg` config (clustermass/model/configs/bcg.toml: `quick` with the BCG fits;
  the studies on mock v3-v7 seeds 101-115 froze `quick`).
- Development seeds, used while choosing configs and never in the study: universes 0, 1, 2.
  Each study takes seeds never used before (mock v3: 101-103, v4: 104-106, v5: 107-109, v6: 110-112,
  v7: 113-115; v7 with `bcg` at b34c7e3: 116-118; 119-121 were started at 4dbdede on v7 and stopped, without
  a figure, when mock v8 came; v8 with `bcg` at 4dbdede: 122-124; v8 with `bcg` and the widened BCG search:
  125-127; the control the first of them), so none of them was used for any choice.
- Resumable: each step's JSON output is kept in WORK/<run>/steps/<step>.json and not rerun;
  WORK/<run>/result.json marks a finished run.

It drives the project's own commands (`python -m clustermass ... --json`, i.e. `cmcat`). About an
hour on 2 cores at the full size; the suite runs a small version (tests/test_accuracy_study.py).

    python scripts/accuracy_study.py --work study/ [--seeds 125,126,127] [--control-seed 125]
        [--n 26350] [--area DEG2] [--config bcg] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clustermass.images.atomic import atomic_write

#: Universe seeds used while developing and choosing configs: never study seeds.
DEVELOPMENT_SEEDS = (0, 1, 2)
STUDY_SEEDS = (125, 126, 127)
MODELS = ("cnn", "hybrid")
REFERENCES = ("label", "truth")
#: Figures of each (model, reference) row of evaluate kept by the study.
ROW_FIELDS = ("n", "mae", "ratio", "ratio_ci95", "gain", "gain_ci68", "gain_ci95", "gain_nonpositive",
              "coverage68", "coverage95")
#: Every tenth order-3 HEALPix tile holding clusters: the hybrid predicts their clusters (~10% of the
#: catalogue), so that its masses of unlabelled clusters can be scored against the truth.
PREDICT_TILES_SQL = ("SELECT pix FROM (SELECT hpx29 >> 52 AS pix, row_number() OVER (ORDER BY hpx29 >> 52) AS k "
                     "FROM clusters GROUP BY 1) t WHERE k % 10 = 1 ORDER BY pix")
#: Figures of each model's row for the unlabelled clusters against truth (evaluate's subset 'unlabelled').
UNLABELLED_FIELDS = ("n", "mae", "bias", "nmad", "coverage68", "coverage95")
#: Figures averaged over seeds in the pooled rows.
POOLED_FIELDS = ("mae", "ratio", "gain", "coverage68", "coverage95")


def cmcat(data_dir: Path, *args: str) -> Any:
    """Run `cmcat --data-dir DATA ARGS --json` and return its parsed JSON; exits on failure."""
    cmd = [sys.executable, "-m", "clustermass", "--data-dir", str(data_dir), *args, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def step(run_dir: Path, name: str, data_dir: Path, *args: str) -> dict[str, Any]:
    """One command of a run, once: its JSON and wall time (s) from steps/<name>.json if done before."""
    done = run_dir / "steps" / f"{name}.json"
    if done.is_file():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    out = {"output": cmcat(data_dir, *args), "seconds": time.perf_counter() - t0}
    _write(done, out)
    return out


def _write(path: Path, data: Any) -> None:
    """JSON to `path`, atomically (a half-written file never marks a step done)."""
    atomic_write(path, json.dumps(data, indent=2).encode())


def _finite(value: Any) -> Any:
    """value with NaN / infinities (in lists too) replaced by None."""
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_one(work: Path, seed: int, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """One universe through the pipeline; its result (also WORK/<run>/result.json, the done-marker)."""
    name = f"s{seed}" if variant == "default" else f"{variant}-s{seed}"
    run_dir = work / name
    result_file = run_dir / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    data, universe = run_dir / "data", run_dir / "universe"
    area = ["--area", str(args.area)] if args.area else []
    threads = ["--threads", str(args.threads)] if args.threads else []
    steps = {
        "db": step(run_dir, "db", data, "db", "upgrade"),
        "universe": step(run_dir, "universe", data, "mock", "universe", "--n", str(args.n), "--seed", str(seed),
                         "--variant", variant, "--out", str(universe), *area),
    }
    for kind, file in (("redmapper", "redmapper.fits"), ("mcxc", "mcxc.csv.gz"), ("psz2", "psz2.fits")):
        steps[f"ingest-{kind}"] = step(run_dir, f"ingest-{kind}", data, "ingest", kind, str(universe / file))
    steps["crossmatch"] = step(run_dir, "crossmatch", data, "crossmatch")
    steps["train"] = step(run_dir, "train", data, "train", "--config", args.config, "--seed", "0", "--source", "mock",
                          "--universe", str(universe), "--mock-seed", str(seed), *threads)
    steps["oracle"] = step(run_dir, "oracle", data, "mock", "oracle", "--universe", str(universe), "--model", "hybrid")
    tiles = cmcat(data, "sql", PREDICT_TILES_SQL)
    steps["predict"] = step(run_dir, "predict", data, "predict", "--tiles", "3:" + ",".join(str(t["pix"]) for t in tiles),
                            "--model", "hybrid", "--source", "mock", "--universe", str(universe), "--seed", str(seed))
    steps["evaluate"] = step(run_dir, "evaluate", data, "evaluate", "hybrid", "--truth", str(universe),
                             "--out", str(run_dir / "plots"))
    ev = steps["evaluate"]["output"]
    rows = {(r["model"], r["reference"]): r for r in ev["rows"] if r["subset"] == "all"}
    result = {
        "run": name, "seed": seed, "variant": variant, "config": steps["train"]["output"]["config"],
        "mock_version": steps["universe"]["output"]["mock_version"],
        "band_accuracy": _finite(ev["band_accuracy"]),
        "reference_band_accuracy": _finite(ev.get("reference_band_accuracy")),
        "richness_mae": {ref: _finite(rows[("richness", ref)]["mae"]) for ref in REFERENCES},
        "rows": [{"model": m, "reference": ref, **{k: _finite(rows[(m, ref)][k]) for k in ROW_FIELDS}}
                 for m in MODELS for ref in REFERENCES],
        "unlabelled": [{"model": r["model"], **{k: _finite(r[k]) for k in UNLABELLED_FIELDS}}
                       for r in ev["rows"] if r["subset"] == "unlabelled"],
        "seconds": {k: round(v["seconds"], 1) for k, v in steps.items()},
        "wall_s": round(sum(v["seconds"] for v in steps.values()), 1),
    }
    _write(result_file, result)
    _stop_server(data)
    return result


def _stop_server(data_dir: Path) -> None:
    """Stop the run's embedded PostgreSQL (each run has one; a later `cmcat` call starts it again)."""
    from clustermass.db.embedded import stop

    stop(data_dir / "pg")


def _mean_sd(values: list[Any]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the defined values (None where too few)."""
    v = [x for x in values if x is not None]
    if not v:
        return None, None
    mean = sum(v) / len(v)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else None
    return mean, sd


def pooled(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, reference): mean and spread (sd) over the default-variant runs of POOLED_FIELDS; G only over
    the runs whose G has a 95% interval (`gain_seeds` of them): where the oracle barely beats richness, G's
    denominator is ~0 and its point value says nothing."""
    runs = [r for r in results if r["variant"] == "default"]
    out = []
    for m in MODELS:
        for ref in REFERENCES:
            rows = [row for r in runs for row in r["rows"] if row["model"] == m and row["reference"] == ref]
            entry: dict[str, Any] = {"model": m, "reference": ref, "n_seeds": len(rows)}
            for key in POOLED_FIELDS:
                kept = [row for row in rows if key != "gain" or row["gain_ci95"] is not None]
                entry[key], entry[f"{key}_sd"] = _mean_sd([row[key] for row in kept])
            entry["gain_seeds"] = sum(row["gain_ci95"] is not None for row in rows)
            out.append(entry)
    extra = {}
    for key in ("band_accuracy", "reference_band_accuracy", "wall_s"):
        extra[key], extra[f"{key}_sd"] = _mean_sd([r.get(key) for r in runs])
    return [{**e, **extra} for e in out]


def _fmt(v: Any, ci: Any = None, digits: int = 3) -> str:
    """'0.912 [0.88, 0.95]', '-' where undefined."""
    if v is None:
        return "-"
    text = f"{v:.{digits}f}"
    return text if ci is None else f"{text} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _ci(ci: Any) -> str:
    """'[lo, hi]' to 2 decimals, '-' where undefined."""
    return "-" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _of_seeds(k: int, n: int) -> str:
    """' (k of n seeds)' where G was pooled over fewer runs than the other figures."""
    return "" if k == n else f" ({k} of {n} seeds)"


def _band(acc: Any, reference: Any) -> str:
    """'0.931 (0.852)': stage 1's band accuracy and the summary-statistics reference classifier's."""
    return _fmt(acc) + ("" if reference is None else f" ({reference:.3f})")


def render(results: list[dict[str, Any]], pool: list[dict[str, Any]]) -> str:
    """The study's table as text: one line per run x model x reference, then the pooled lines."""
    head = ("run", "model", "ref", "MAE", "ratio [95%]", "G [68%]", "G [95%]", "G<=0 resamples", "cov68", "cov95",
            "band acc (reference)", "wall s")
    lines = [" | ".join(head)]
    for r in results:
        for row in r["rows"]:
            lines.append(" | ".join([
                r["run"], row["model"], row["reference"], _fmt(row["mae"], digits=4), _fmt(row["ratio"], row["ratio_ci95"]),
                _fmt(row["gain"], row["gain_ci68"], 2), _ci(row["gain_ci95"]),
                str(row["gain_nonpositive"]), _fmt(row["coverage68"]), _fmt(row["coverage95"]),
                _band(r["band_accuracy"], r.get("reference_band_accuracy")), _fmt(r["wall_s"], digits=0)]))
    for p in pool:
        sd = lambda k: "" if p[f"{k}_sd"] is None else f" +- {p[f'{k}_sd']:.3f}"  # noqa: E731
        lines.append(" | ".join([
            f"pooled ({p['n_seeds']} seeds)", p["model"], p["reference"], _fmt(p["mae"], digits=4) + sd("mae"),
            _fmt(p["ratio"]) + sd("ratio"), _fmt(p["gain"]) + sd("gain") + _of_seeds(p["gain_seeds"], p["n_seeds"]), "", "",
            _fmt(p["coverage68"]) + sd("coverage68"), _fmt(p["coverage95"]) + sd("coverage95"),
            _band(p["band_accuracy"], p["reference_band_accuracy"]) + sd("band_accuracy"), _fmt(p["wall_s"], digits=0)]))
    lines += ["", "unlabelled clusters against the true masses ('<kind> population': population_log10_m500; bias: median predicted - true)",
              " | ".join(("run", "model", "n", "MAE", "bias", "NMAD", "cov68", "cov95"))]
    for r in results:
        for u in r.get("unlabelled", []):
            lines.append(" | ".join([r["run"], u["model"], str(u["n"]), _fmt(u["mae"], digits=4), _fmt(u["bias"], digits=4),
                                     _fmt(u["nmad"], digits=4), _fmt(u["coverage68"]), _fmt(u["coverage95"])]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="Folder of the runs (one sub-folder each; keep it short: "
                    "the embedded server's socket lives under it).")
    ap.add_argument("--seeds", default=",".join(map(str, STUDY_SEEDS)), help="Universe seeds of the default variant.")
    ap.add_argument("--control-seed", type=int, default=STUDY_SEEDS[0], help="Seed of the control-variant universe; "
                    "-1: none.")
    ap.add_argument("--n", type=int, default=26350, help="Clusters per universe.")
    ap.add_argument("--area", type=float, default=None, help="Sky area (deg^2) of each universe (default: the footprint).")
    ap.add_argument("--config", default="bcg", help="Training config (the study's is the frozen bcg config).")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads of `cmcat train`.")
    ap.add_argument("--json", action="store_true", help="Print the results and pooled rows as JSON.")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if set(seeds) & set(DEVELOPMENT_SEEDS) or args.control_seed in DEVELOPMENT_SEEDS:
        print(f"note: seeds {sorted(set(seeds + [args.control_seed]) & set(DEVELOPMENT_SEEDS))} are development "
              "seeds: these are development figures, not the study's", file=sys.stderr)
    runs = [(s, "default") for s in seeds] + ([(args.control_seed, "control")] if args.control_seed >= 0 else [])
    results = []
    for seed, variant in runs:
        print(f"run {variant} seed {seed} ...", file=sys.stderr, flush=True)
        results.append(run_one(args.work, seed, variant, args))
    pool = pooled(results)
    if args.json:
        print(json.dumps({"runs": results, "pooled": pool}, indent=2))
    else:
        print(render(results, pool))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
