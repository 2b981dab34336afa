#!/usr/bin/python3
"""Reproduces the Conductor trends of docs/conductor.md with mc-conductor-sim.

  experiments.py --sim build/conductor/mc-conductor-sim \\
      --trace ../shared/data/mooncake-traces/conversation_trace.jsonl
  experiments.py --plot-only

Runs the simulator (deterministic, seed 1) and writes its results as CSV
under docs/conductor/ (a.csv, b.csv, b_load_<admission>.csv, c.csv), then
draws a.png, b.png and c.png from those CSV files with matplotlib.  Not run
in CI (matplotlib is not in CI's package list); the CSV files are committed
beside the plots so the numbers in the text can be checked.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
EX = os.path.join(ROOT, "examples", "conductor")

POLICIES = ["random", "load-balance", "cache-local", "cache-global"]
ADMISSIONS = ["baseline", "early", "predicted"]
SPEEDS_A = [1, 1.5, 2, 2.5, 3]
SPEEDS_B = [1.5, 2, 2.5]
TD_B = [20, 30, 46, 60, 100, 1000]
CAPS_C = [100, 250, 500, 1000, 2000, 4000, 6000, 10000]


def sim(a, config, policy, admission, speed, sets=(), csv_out=None):
    cmd = [a.sim, "--trace", a.trace, "--config", config, "--policy", policy,
           "--admission", admission, "--speed", str(speed), "--seed", "1", "--json"]
    for s in sets:
        cmd += ["--set", s]
    if csv_out:
        cmd += ["--csv", csv_out]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    print("  " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd[1:]),
          file=sys.stderr)
    return json.loads(out)


def write(path, rows, keys):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


KEYS = ["speed", "policy", "admission", "cache_blocks", "global_pool", "requests", "served",
        "rejected", "rejected_ttft", "rejected_decode_early", "rejected_predicted",
        "rejected_at_decode", "slo_attained", "ttft_mean_s", "ttft_p50_s", "ttft_p99_s",
        "tbt_p90_s", "prefix_hit_ratio", "prefill_gpu_s", "wasted_prefill_s", "fetched_blocks",
        "decode_mean_s", "decode_biased_s"]


def run(a):
    cluster = os.path.join(EX, "cluster.yaml")
    overload = os.path.join(EX, "overload-8p8d.yaml")
    # (a) TTFT by prefill policy: 16P + 8D, nothing rejected (TTFT SLO off)
    # so the mean covers every request.
    rows = []
    for sp in SPEEDS_A:
        for p in POLICIES:
            rows.append(sim(a, cluster, p, "baseline", sp, ["ttft_slo_s=1e6"]))
    write(os.path.join(HERE, "a.csv"), rows, KEYS)
    # (b) rejections by admission, 8P + 8D at 2x (and 1.5x, 2.5x), with the
    # load curves of the 2x runs.
    rows = []
    tmp = tempfile.mkdtemp()
    try:
        for sp in SPEEDS_B:
            for adm in ADMISSIONS:
                c = os.path.join(tmp, "%s.csv" % adm) if sp == 2 else None
                rows.append(sim(a, overload, "cache-global", adm, sp, csv_out=c))
                if c:
                    shutil.copy(c, os.path.join(HERE, "b_load_%s.csv" % adm))
    finally:
        shutil.rmtree(tmp)
    write(os.path.join(HERE, "b.csv"), rows, KEYS)
    # (b') the prediction's uniform decode time t_d, at 2x.
    rows = []
    for td in TD_B:
        r = sim(a, overload, "cache-global", "predicted", 2, ["decode_time_s=%g" % td])
        r["decode_time_s"] = td
        rows.append(r)
    write(os.path.join(HERE, "b_td.csv"), rows, ["decode_time_s"] + KEYS)
    # (c) prefix hit ratio against per-instance capacity: 10 prefill
    # instances (FAST'25 sec. 5.3), private LRU caches (cache-aware and
    # load-balancing routing) against the global pool of the same total.
    rows = []
    for cap in CAPS_C:
        base = ["prefill=10", "cache_blocks=%d" % cap, "ttft_slo_s=1e6"]
        for label, pol, extra in [("local, cache-local", "cache-local", []),
                                  ("local, load-balance", "load-balance", []),
                                  ("local + replication, cache-global", "cache-global", []),
                                  ("global pool, cache-global", "cache-global",
                                   ["global_pool=true"])]:
            r = sim(a, cluster, pol, "baseline", 1, base + extra)
            r["setup"] = label
            rows.append(r)
    write(os.path.join(HERE, "c.csv"), rows, ["setup"] + KEYS)


def read(name):
    with open(os.path.join(HERE, name)) as f:
        return list(csv.DictReader(f))


def plot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = read("a.csv")
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    at2 = [r for r in a if float(r["speed"]) == 2]
    ax[0].bar([r["policy"] for r in at2], [float(r["ttft_mean_s"]) for r in at2],
              color=["#999", "#6a9fd4", "#f0a030", "#3a9d4a"])
    for i, r in enumerate(at2):
        ax[0].text(i, float(r["ttft_mean_s"]), "%.2f s" % float(r["ttft_mean_s"]),
                   ha="center", va="bottom")
    ax[0].set_ylabel("mean TTFT (s)")
    ax[0].set_title("(a) 16P+8D, conversation trace at 2x")
    for p in POLICIES:
        rs = [r for r in a if r["policy"] == p]
        ax[1].plot([float(r["speed"]) for r in rs], [float(r["ttft_mean_s"]) for r in rs],
                   marker="o", label=p)
    ax[1].set_xlabel("replay speed")
    ax[1].set_ylabel("mean TTFT (s)")
    ax[1].set_yscale("log")
    ax[1].legend()
    ax[1].set_title("mean TTFT against load")
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "a.png"), dpi=110)

    b = read("b.csv")
    fig = plt.figure(figsize=(12, 8))
    g = fig.add_gridspec(3, 2)
    axb = fig.add_subplot(g[:, 0])
    width = 0.25
    for k, sp in enumerate(SPEEDS_B):
        rs = [r for r in b if float(r["speed"]) == sp]
        xs = [i + (k - 1) * width for i in range(len(rs))]
        axb.bar(xs, [int(r["rejected"]) for r in rs], width, label="%gx" % sp)
        for x, r in zip(xs, rs):
            axb.text(x, int(r["rejected"]), r["rejected"], ha="center", va="bottom", fontsize=7)
    axb.set_xticks(range(len(ADMISSIONS)))
    axb.set_xticklabels(ADMISSIONS)
    axb.set_ylabel("rejected requests (of 12,031)")
    axb.set_title("(b) 8P+8D, rejections by admission policy")
    axb.legend(title="speed")
    for i, adm in enumerate(ADMISSIONS):
        ax = fig.add_subplot(g[i, 1])
        rs = read("b_load_%s.csv" % adm)
        t = [float(r["t_s"]) for r in rs]
        ax.plot(t, [float(r["prefill_load"]) for r in rs], label="prefill load")
        ax.plot(t, [float(r["decode_load"]) for r in rs], label="decode load")
        ax.set_ylim(0, 1.6)
        ax.set_title("%s (2x)" % adm, fontsize=9)
        if i == 0:
            ax.legend(fontsize=8, loc="upper right")
        if i == 2:
            ax.set_xlabel("simulated time (s)")
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "b.png"), dpi=110)

    td = read("b_td.csv")
    base = {r["admission"]: int(r["rejected"]) for r in b if float(r["speed"]) == 2}
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([float(r["decode_time_s"]) for r in td], [int(r["rejected"]) for r in td],
            marker="o", label="predicted (t_d on the x axis)")
    ax.axhline(base["baseline"], color="C3", ls="--", label="baseline")
    ax.axhline(base["early"], color="C2", ls="--", label="early")
    ax.axvline(float(td[0]["decode_mean_s"]), color="k", ls=":", lw=1,
               label="mean decode time")
    ax.set_xscale("log")
    ax.set_xlabel("t_d, the uniform decode time the prediction assumes (s)")
    ax.set_ylabel("rejected requests")
    ax.set_title("(b) 8P+8D at 2x: prediction against its t_d")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "b_td.png"), dpi=110)

    c = read("c.csv")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for setup in sorted({r["setup"] for r in c}):
        rs = [r for r in c if r["setup"] == setup]
        ax.plot([int(r["cache_blocks"]) for r in rs], [float(r["prefix_hit_ratio"]) for r in rs],
                marker="o", label=setup)
    ax.axhline(0.366, color="k", ls=":", lw=1, label="unbounded cache (36.6%)")
    ax.set_xscale("log")
    ax.set_xlabel("KV cache per prefill instance (512-token blocks); pool = 10x")
    ax.set_ylabel("prefix hit ratio (blocks)")
    ax.set_title("(c) prefix hit ratio, 10 prefill instances, conversation trace")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "c.png"), dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sim", default=os.path.join(ROOT, "build", "conductor", "mc-conductor-sim"))
    ap.add_argument("--trace", default=os.path.join(ROOT, "..", "shared", "data",
                                                    "mooncake-traces", "conversation_trace.jsonl"))
    ap.add_argument("--plot-only", action="store_true")
    a = ap.parse_args()
    if not a.plot_only:
        run(a)
    plot()


if __name__ == "__main__":
    main()
