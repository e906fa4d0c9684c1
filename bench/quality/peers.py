#!/usr/bin/python3
"""Peers of `fraud-bench-quality`: standard models trained on exactly the rows our versions train on.

Reads the replay's part files (initial, P1, P2, P3, P4: CSV with a Class column), and for every
stage k = 0..3 trains each peer on initial + P1..Pk (the rows our version k+1 is trained on) and
scores P4 (the comparison part no version ever trains on). Prints one JSON line per (stage, peer):

  {"stage":1,"trained_on":"initial+P1","peer":"xgboost","auprc":0.81,"weighted_auprc":0.76,...}

The weighted AUPRC re-weights normal rows so frauds are `--weight-to-rate` of the total weight,
exactly as training's Evaluate does (normal weight = F (1 - r) / (r N)); average precision is the
step-wise sum over distinct thresholds (ties grouped), which is both scikit-learn's and ours.

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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", required=True,
                   help="comma-separated CSV files: initial,P1,P2,P3,P4")
    p.add_argument("--names", default="initial,P1,P2,P3,P4")
    p.add_argument("--weight-to-rate", type=float, default=0.001727)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peers", default="", help="subset of peers (default: all)")
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
