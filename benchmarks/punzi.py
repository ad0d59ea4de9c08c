"""Benchmark: Punzi-net training time and memory at analysis scale.

Default: about 10^6 candidates (truth-matched signal + background), 200
trained mass hypotheses (+22 held out), 500 full-batch Punzi epochs (early
stopping off) on the synthetic three-photon sample of ``bumphunt.toymc.three_photon``
(after the 4C kinematic fit, so nine features), TensorFlow limited to 2
threads. Wall-clock and CPU time are both reported (the machine is shared). Targets:
Punzi training <= 10 minutes, peak RSS <= 8 GiB. Also reports the mean
minimum detectable cross-section of the Punzi net, the BCE-only net and the
cut-based selection, and the held-out-mass check.

    python benchmarks/punzi.py [--quick] [--epochs N] [--threads N]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~10^5 candidates, 50 masses, 50 epochs")
    parser.add_argument("--epochs", type=int, default=None, help="Punzi epochs (default 500, quick 50)")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-kinfit", action="store_true", help="skip the 4C kinematic fit (eight features)")
    args = parser.parse_args(argv)

    from bumphunt.selection.masses import mass_grid
    from bumphunt.selection.selector import TrainConfig, configure_threads
    from bumphunt.selection.training import train_selector
    from bumphunt.selection.training_data import prepare_training_data
    from bumphunt.toymc.three_photon import synthetic_sample

    configure_threads(args.threads)
    if args.quick:
        n_masses, n_per_mass, n_bkg, epochs, heldout = 50, 300, 120_000, args.epochs or 50, 5
    else:
        n_masses, n_per_mass, n_bkg, epochs, heldout = 222, 600, 1_150_000, args.epochs or 500, 22
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    masses = mass_grid(0.175, 10.375, n=n_masses)
    events, n_gen = synthetic_sample(masses=masses, n_per_mass=n_per_mass, n_background=n_bkg, seed=args.seed)
    kinfit = False
    if not args.no_kinfit:
        try:
            from bumphunt.kinfit import apply_to_events
        except ImportError:
            pass
        else:
            events = apply_to_events(events)
            kinfit = True
    t1 = time.perf_counter()
    data = prepare_training_data(events, n_generated=n_gen, heldout=heldout, lumi_fb=1.0, seed=args.seed)
    del events
    t2 = time.perf_counter()
    cfg = TrainConfig(pretrain_epochs=10, punzi_epochs=epochs, patience=10**9, punzi_learning_rate=3e-3,
                      threads=args.threads, seed=args.seed)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    result = train_selector(data, cfg)
    t3 = time.perf_counter()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_train = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    summary = result.summary()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    peak_gib = peak_kib / 1024**2
    punzi_s = result.timing["punzi"]
    n_epochs_run = len(result.history["loss"])
    out = {
        "benchmark": "punzi_net_training",
        "quick": args.quick,
        "threads": args.threads,
        "n_candidates": int(data.label.size),
        "n_signal_candidates": int((data.label == 1).sum()),
        "n_background_candidates": int((data.label == 0).sum()),
        "n_masses": int(data.n_masses),
        "n_trained_masses": int(data.trained.sum()),
        "n_heldout_masses": int(data.heldout.sum()),
        "n_features": len(data.names),
        "features": list(data.names),
        "kinematic_fit": kinfit,
        "network": f"{cfg.hidden_layers}x{cfg.units} {cfg.activation}",
        "punzi_epochs": n_epochs_run,
        "time_generate_and_kinfit_s": t1 - t0,
        "time_prepare_s": t2 - t1,
        "time_pretrain_s": result.timing["pretrain"],
        "time_punzi_training_s": punzi_s,
        "time_per_punzi_epoch_s": punzi_s / max(n_epochs_run, 1),
        "time_evaluation_s": result.timing["evaluation"],
        "time_total_s": t3 - t0,
        "cpu_time_training_s": cpu_train,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "peak_rss_gib": peak_gib,
        "target_training_s": 600.0,
        "target_peak_rss_gib": 8.0,
        "meets_time_target": punzi_s + result.timing["pretrain"] <= 600.0,
        "meets_memory_target": peak_gib <= 8.0,
        "mean_sigma_min_pb": summary["mean_sigma_min_pb"],
        "punzi_better_than_bce": summary["mean_sigma_min_pb"]["punzi"] < summary["mean_sigma_min_pb"]["bce"],
        "punzi_better_than_cut_based": summary["mean_sigma_min_pb"]["punzi"] < summary["mean_sigma_min_pb"]["cut_based"],
        "max_heldout_deviation": summary["max_heldout_deviation"],
        "heldout_within_10_percent": summary["max_heldout_deviation"] is not None and summary["max_heldout_deviation"] < 0.10,
        "nan_events": result.nan_events,
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return out


if __name__ == "__main__":
    main()
