#!/usr/bin/python3
"""Peers of `fraud-bench-quality`: standard models trained on exactly the rows our versions train on.

Reads the replay's part files (initial, P1, P2, P3, P4: CSV with a Class column), and for every
stage k = 0..3 trains each peer on initial + P1..Pk (the rows our version k+1 is trained on) and
scores P4 (the comparison part no version ever trains on). Prints one JSON line per (stage, peer):

  {"stage":1,"trained_on":"initial+P1","peer":"xgboost","auprc":0.81,"weighted_auprc":0.76,...}

The weighted AUPRC re-weights normal rows so frauds are `--weight-to-rate` of the total weight,
exactly as training's Evaluate does (normal weight = F (1 - r) / (r N)); average precision is the
step-wise sum over distinct thresholds (ties grouped), which is both scikit-learn's and ours.

With --ceiling, each stage instead trains a wide grid of configurations of the same libraries
(ceiling_grid below: logistic regression with and without class weights, random forests and
extra trees, XGBoost over rounds, depth, learning rate and scale_pos_weight, MLPs over width,
L2 penalty and seed) plus the probability and rank averages of the best 2..6 of them, and prints
one line per stage with the best weighted AUPRC on P4 among them:

  {"stage":3,"kind":"ceiling","ceiling":0.827,"ceiling_config":"mlp 128,64 alpha=0.0001 seed=2",...}

The configuration is chosen BY LOOKING AT P4, which no honest selection can do: the figure is an
upper bound on what choosing among these models could give on these rows, not a peer.

Bench-only: needs Debian's python3-sklearn and python3-xgboost (the bench installs them); no
service depends on Python. Settings are each library's standard ones (the issue names them).
"""

import argparse
import csv
import json
import sys
import time

import numpy as np

FEATURES = ["Time"] + [f"V{i}" for i in range(1, 29)] + ["Amount"]


def read_part(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip().strip('"') for h in next(reader)]
        try:
            cols = [header.index(name) for name in FEATURES]
            label = header.index("Class")
        except ValueError as e:
            sys.exit(f"peers.py: {path}: header lacks a column ({e})")
        x, y = [], []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                x.append([float(row[c].strip('"')) for c in cols])
                y.append(int(float(row[label].strip('"'))))
            except (ValueError, IndexError) as e:
                sys.exit(f"peers.py: {path} line {line}: {e}")
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int32)


def ratio_weights(y, rate):
    frauds = int(y.sum())
    normals = len(y) - frauds
    w_normal = frauds * (1 - rate) / (rate * normals)
    return np.where(y == 1, 1.0, w_normal)


def average_precision(scores, y, weights=None):
    from sklearn.metrics import average_precision_score
    return float(average_precision_score(y, scores, sample_weight=weights))


def peers(seed, threads):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    import xgboost

    return {
        "logistic_regression": lambda: make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=1000)),
        "random_forest": lambda: RandomForestClassifier(
            n_estimators=100, n_jobs=threads, random_state=seed),
        "xgboost": lambda: xgboost.XGBClassifier(
            n_estimators=400, max_depth=4, learning_rate=0.05, subsample=0.8,
            tree_method="hist", n_jobs=threads, random_state=seed),
        "mlp_64_32": lambda: make_pipeline(
            StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 32), early_stopping=True,
                                            max_iter=200, random_state=seed)),
    }


def ceiling_grid(threads):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    import xgboost

    grid = {}
    for c in (0.01, 0.1, 1, 10):
        for cw in (None, "balanced"):
            grid[f"logreg C={c} class_weight={cw}"] = lambda c=c, cw=cw: make_pipeline(
                StandardScaler(), LogisticRegression(C=c, class_weight=cw, max_iter=2000))
    for depth in (None, 10):
        grid[f"random_forest 300 trees depth={depth}"] = lambda depth=depth: (
            RandomForestClassifier(n_estimators=300, max_depth=depth, n_jobs=threads,
                                   random_state=0))
    grid["extra_trees 300 trees"] = lambda: ExtraTreesClassifier(
        n_estimators=300, n_jobs=threads, random_state=0)
    for rounds in (200, 600):
        for depth in (3, 5, 7):
            for eta in (0.03, 0.1):
                for spw in (1, 5):
                    grid[f"xgboost rounds={rounds} depth={depth} eta={eta} spw={spw}"] = (
                        lambda rounds=rounds, depth=depth, eta=eta, spw=spw: xgboost.XGBClassifier(
                            n_estimators=rounds, max_depth=depth, learning_rate=eta,
                            subsample=0.8, colsample_bytree=0.8, scale_pos_weight=spw,
                            tree_method="hist", n_jobs=threads, random_state=0))
    for hidden in ((32,), (64, 32), (128, 64)):
        for alpha in (1e-4, 1e-2):
            for seed in range(3):
                name = ",".join(str(h) for h in hidden)
                grid[f"mlp {name} alpha={alpha} seed={seed}"] = (
                    lambda hidden=hidden, alpha=alpha, seed=seed: make_pipeline(
                        StandardScaler(), MLPClassifier(hidden_layer_sizes=hidden, alpha=alpha,
                                                        early_stopping=True, max_iter=300,
                                                        random_state=seed)))
    return grid


def ceiling(x, y, x4, y4, w4, threads):
    """Best weighted AUPRC on P4 over ceiling_grid and the averages of its best 2..6."""
    from scipy.stats import rankdata

    scores, results = {}, {}
    for name, make in ceiling_grid(threads).items():
        model = make()
        model.fit(x, y)
        scores[name] = model.predict_proba(x4)[:, 1]
        results[name] = average_precision(scores[name], y4, w4)
    single = dict(results)
    best = sorted(single, key=lambda n: -single[n])
    for k in range(2, 7):
        top = best[:k]
        results[f"probability mean of the best {k}"] = average_precision(
            np.mean([scores[n] for n in top], axis=0), y4, w4)
        results[f"rank mean of the best {k}"] = average_precision(
            np.mean([rankdata(scores[n]) for n in top], axis=0), y4, w4)
    ranked = sorted(results, key=lambda n: -results[n])
    return {
        "ceiling": round(results[ranked[0]], 6),
        "ceiling_config": ranked[0],
        "configs": len(single),
        "median_config": round(float(np.median(list(single.values()))), 6),
        "top": [[n, round(results[n], 6)] for n in ranked[:5]],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", required=True,
                   help="comma-separated CSV files: initial,P1,P2,P3,P4")
    p.add_argument("--names", default="initial,P1,P2,P3,P4")
    p.add_argument("--weight-to-rate", type=float, default=0.001727)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peers", default="", help="subset of peers (default: all)")
    p.add_argument("--ceiling", action="store_true",
                   help="instead of the peers: the best of a wide grid, chosen on P4 (see above)")
    a = p.parse_args()
    paths = a.parts.split(",")
    names = a.names.split(",")
    if len(paths) != 5 or len(names) != 5:
        sys.exit("peers.py: --parts needs five files (initial,P1,P2,P3,P4)")
    if not 0 < a.weight_to_rate < 1:
        sys.exit("peers.py: --weight-to-rate must be in (0, 1)")
    parts = [read_part(path) for path in paths]
    x4, y4 = parts[4]
    w4 = ratio_weights(y4, a.weight_to_rate)
    models = peers(a.seed, a.threads)
    wanted = [m for m in a.peers.split(",") if m] or list(models)
    for stage in range(4):
        x = np.concatenate([parts[i][0] for i in range(stage + 1)])
        y = np.concatenate([parts[i][1] for i in range(stage + 1)])
        trained_on = "+".join(names[: stage + 1])
        if a.ceiling:
            start = time.perf_counter()
            line = {"stage": stage, "trained_on": trained_on, "kind": "ceiling",
                    "train_rows": int(len(y)), "train_frauds": int(y.sum())}
            line.update(ceiling(x, y, x4, y4, w4, a.threads))
            line["seconds"] = round(time.perf_counter() - start, 3)
            print(json.dumps(line), flush=True)
            continue
        for name in wanted:
            start = time.perf_counter()
            model = models[name]()
            model.fit(x, y)
            scores = model.predict_proba(x4)[:, 1]
            print(json.dumps({
                "stage": stage, "trained_on": trained_on, "peer": name,
                "train_rows": int(len(y)), "train_frauds": int(y.sum()),
                "comparison_rows": int(len(y4)), "comparison_frauds": int(y4.sum()),
                "auprc": round(average_precision(scores, y4), 6),
                "weighted_auprc": round(average_precision(scores, y4, w4), 6),
                "seconds": round(time.perf_counter() - start, 3),
            }), flush=True)


if __name__ == "__main__":
    main()
