"""The mock's calibration table: full-size universes against the real data and the literature.

Builds universes of --n clusters (default the real catalogue's 26,350) for each --seeds, writes them
to temporary folders and prints, per seed, every figure of docs/mock.md's calibration table: KS of
lambda and z_lambda against redMaPPer v5.10, labelled fraction, the serendipitous share of the X-ray labels (against
the real MCXC's), the richness baseline (5-fold MAE and slope with their bootstrap errors over the labels, intercept,
x^2 coefficient), projected share of lambda per richness
bin and sigma(ln lambda | M), miscentring, the magnitude-gap effect (on the clusters' own member
counts, as Hearin+2013, and on the observed lambda), BCG colours against SPIDERS, field counts and
colours against the real photoObj field, and the fields' seeing and sky. The mock version is printed
with them.

    PYTHONPATH=. python scripts/mock_calibration.py [--n 26350] [--seeds 0,2] [--real ../shared/data/real] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def universe_figures(n: int, seed: int, real: Path) -> dict:
    """All calibration figures of one universe."""
    from clustermass.mock import calibrate
    from clustermass.mock.population import build_universe
    from clustermass.mock.writers import FILES, write_universe

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.process_time()
        write_universe(build_universe(n, seed), Path(tmp), {"n": n, "seed": seed, "area_deg2": None})
        build_cpu = time.process_time() - t0
        s = calibrate.baseline_summary(Path(tmp))
        bcg = calibrate.bcg_offsets(Path(tmp), real, bins=np.arange(0.05, 0.31, 0.05))
        return {
            "seed": seed, "build_cpu_s": round(build_cpu, 1), "ks": calibrate.ks_statistics(Path(tmp), real),
            "labels": {k: s[k] for k in ("clusters", "labelled", "fraction", "xray", "sz")},
            "serendipitous": calibrate.serendipitous_share(Path(tmp) / FILES["redmapper_csv"], Path(tmp) / FILES["mcxc"]),
            "catalogue_offset": calibrate.catalogue_offset(Path(tmp) / FILES["redmapper_csv"], Path(tmp) / FILES["mcxc"],
                                                           Path(tmp) / FILES["psz2"]),
            "baseline": {"mae": s["mae"], "intercept": s["coef"][0], "slope": s["coef"][1], "bend": s["coef"][3],
                         "label_scatter_vs_truth": s["label_scatter_vs_truth"],
                         **calibrate.baseline_sampling_error(Path(tmp))},
            "abundance": calibrate.abundance(Path(tmp), real),
            "projection": calibrate.projection_shares(Path(tmp)),
            "assembly": calibrate.assembly_effects(Path(tmp)),
            "bcg_max_offset": {c: float(np.abs(bcg[c]).max()) for c in ("d_gr", "d_ri", "d_r")},
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=26350)
    ap.add_argument("--seeds", default="0,2")
    ap.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    from clustermass.mock import calibrate
    from clustermass.mock.version import MOCK_VERSION

    out = {"mock_version": MOCK_VERSION, "n": args.n,
           "universes": [universe_figures(args.n, int(s), args.real) for s in args.seeds.split(",")],
           "real_serendipitous": calibrate.serendipitous_share(args.real / calibrate.REAL_REDMAPPER,
                                                               args.real / calibrate.REAL_MCXC),
           "real_catalogue_offset": calibrate.catalogue_offset(args.real / calibrate.REAL_REDMAPPER,
                                                               args.real / calibrate.REAL_MCXC,
                                                               args.real / calibrate.REAL_PSZ2),
           "field": calibrate.field_comparison(args.real), "conditions": calibrate.conditions_comparison(args.real)}
    if args.json:
        print(json.dumps(out, indent=1, default=float))
        return
    print(f"mock v{MOCK_VERSION}, {args.n} clusters per universe")
    for u in out["universes"]:
        b, lab, p, a = u["baseline"], u["labels"], u["projection"], u["assembly"]
        print(f"seed {u['seed']} (build {u['build_cpu_s']} CPU s)")
        ab = u["abundance"]
        print(f"  KS lambda {u['ks']['lambda']:.3f}, z {u['ks']['z']:.3f}; {ab['mock_per_deg2']:.3f} clusters per deg^2 "
              f"(real {ab['real_per_deg2']:.3f}, ratio {ab['ratio']:.2f})")
        print(f"  mean true M500 at lambda 35-45, z 0.10-0.33: log10 {ab['log10_mean_m500_lambda40']:.3f} "
              f"(weak lensing, Simet+2017 as M500c: {ab['lensing_log10_m500_lambda40']:.3f}; {ab['lensing_bin_clusters']} clusters)")
        print(f"  labelled {lab['labelled']} = {100 * lab['fraction']:.2f}% ({lab['xray']} X-ray, {lab['sz']} SZ)")
        print(f"  baseline MAE {b['mae']:.3f} +- {b['mae_sd']:.3f} dex, slope {b['slope']:.3f} +- {b['slope_sd']:.3f} "
              f"(bootstrap over the labels), intercept {b['intercept']:.3f}, x^2 coefficient {b['bend']:.1f}; "
              f"label scatter vs truth {b['label_scatter_vs_truth']:.3f} dex")
        ser, rs = u["serendipitous"], out["real_serendipitous"]
        print(f"  serendipitous X-ray labels {100 * ser['share']:.1f}% (real {100 * rs['share']:.1f}%), "
              f"{ser['mass_offset_dex']:+.3f} dex at fixed lambda (real {rs['mass_offset_dex']:+.3f}), median z "
              f"{ser['median_z_serendipitous']:.3f} / RASS {ser['median_z_rass']:.3f} "
              f"(real {rs['median_z_serendipitous']:.3f} / {rs['median_z_rass']:.3f})")
        co, rc = u["catalogue_offset"], out["real_catalogue_offset"]
        print(f"  log MSZ - log M_MCXC of clusters in both: mean {co['mean_dex']:+.3f}, sd {co['sd_dex']:.3f} dex, "
              f"{co['clusters']} clusters (real {rc['mean_dex']:+.3f}, {rc['sd_dex']:.3f}, {rc['clusters']})")
        print("  projected share of lambda: " + ", ".join(f"{k}: {v:.3f}" for k, v in p["share"].items())
              + f"; all {p['all']:.3f}; sigma(ln lambda | M) {p['sigma_lnlambda_at_m']:.3f}")
        print(f"  miscentred {a['miscentred_fraction']:.3f}, mean offset {a['miscentred_offset_rlambda']:.3f} R_lambda, "
              f"their lambda x{a['miscentred_lambda_ratio']:.3f}")
        print(f"  sigma(log M | own members, z) {a['sigma_logm_lambda']:.3f} -> {a['sigma_logm_lambda_gap']:.3f} with the gap "
              f"({100 * a['gap_scatter_reduction']:.1f}% lower; with observed lambda {a['sigma_logm_lambda_obs']:.3f} -> "
              f"{a['sigma_logm_lambda_gap_obs']:.3f}, {100 * a['gap_scatter_reduction_obs']:.1f}%); "
              f"median gap {a['gap12_median']:.2f} mag; "
              f"sigma ln c500 {a['c500_ln_scatter']:.3f}")
        print("  BCG vs SPIDERS, max |mock - real| over 0.05 < z < 0.30: "
              + ", ".join(f"{k} {v:.3f}" for k, v in u["bcg_max_offset"].items()))
    if len(out["universes"]) > 1:
        mae = np.array([u["baseline"]["mae"] for u in out["universes"]])
        slope = np.array([u["baseline"]["slope"] for u in out["universes"]])
        print(f"over {mae.size} seeds: baseline MAE mean {mae.mean():.3f}, sd {mae.std(ddof=1):.3f} dex; "
              f"slope mean {slope.mean():.3f}, sd {slope.std(ddof=1):.3f}")
    for kind in ("galaxies", "stars"):
        f = out["field"][kind]
        print(f"{kind} 18 < r < 21.5: {f['mock_per_deg2']:.0f} vs {f['real_per_deg2']:.0f} +- {f['real_per_deg2_err']:.0f} "
              f"deg^-2; " + ", ".join(f"{c} {f['mock_' + c]:.3f} vs {f['real_' + c]:.3f} +- {f['real_' + c + '_err']:.3f}"
                                       for c in ("gr", "ri", "iz")))
    c = out["conditions"]
    print(f"r seeing 5/50/95%: {c['mock_fwhm_r']} vs {c['real_fwhm_r']}; r sky {c['mock_sky_r']} vs {c['real_sky_r']}; "
          f"SCORE {c['mock_score']} vs {c['real_score']}")


if __name__ == "__main__":
    main()
