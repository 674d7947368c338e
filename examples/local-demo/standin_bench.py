#!/usr/bin/env python3
"""STAND-IN for `vllm bench serve`: checks the server answers, then writes a result JSON
in vLLM's format (mean/median/p99 TTFT and TPOT, E2E latency, throughput, per-request
TTFTs) with plausible numbers that grow with prompt length and concurrency and vary
from run to run. `--bimodal` plants a two-phase TTFT distribution (cold and warm requests).
"""
import argparse
import json
import random
import statistics
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--prompt", type=int, required=True)
p.add_argument("--concurrency", type=int, required=True)
p.add_argument("--iterations", type=int, default=30)
p.add_argument("--max-tokens", type=int, default=128)
p.add_argument("--mode", default="unified")
p.add_argument("--transport", default="none")
p.add_argument("--bimodal", action="store_true")
p.add_argument("--out", required=True)
a = p.parse_args()

with urllib.request.urlopen(a.url + "/health", timeout=5) as r:
    assert r.status == 200, "server not healthy"

# Prefill cost grows with the prompt; disaggregation adds the KV transfer.
base = 20 + a.prompt / 1024 * 9.0
transfer = {"none": 0.0, "efa": 2.0, "srd": 2.5, "tcp": 6.0}.get(a.transport, 0.0) * a.prompt / 1024
queue = 1 + (a.concurrency - 1) * 0.35
ttfts = []
for i in range(a.iterations):
    t = (base + transfer) * queue * random.uniform(0.9, 1.15)
    if a.bimodal and i % 2 == 0:
        t *= 2.2  # first-touch memory registration on half the requests
    ttfts.append(t)
tpots = [random.uniform(14, 16) * (1 + 0.05 * (a.concurrency - 1)) for _ in range(a.iterations)]
e2e = [t + tp * a.max_tokens for t, tp in zip(ttfts, tpots)]


def p99(v):
    return sorted(v)[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))]


result = {
    "backend": "stand-in",
    "num_prompts": a.iterations,
    "mean_ttft_ms": statistics.mean(ttfts),
    "median_ttft_ms": statistics.median(ttfts),
    "p99_ttft_ms": p99(ttfts),
    "mean_tpot_ms": statistics.mean(tpots),
    "median_tpot_ms": statistics.median(tpots),
    "p99_tpot_ms": p99(tpots),
    "mean_e2el_ms": statistics.mean(e2e),
    "output_throughput": a.concurrency * a.max_tokens / (statistics.mean(e2e) / 1000.0),
    # Wall time of the run, as vLLM reports it: the requests ran `concurrency` at a time.
    "duration": a.iterations * statistics.mean(e2e) / 1000.0 / a.concurrency,
    "completed": a.iterations,
    "failed": 0,
    "ttfts": [t / 1000.0 for t in ttfts],
    # vLLM's per-request inter-token latencies, in seconds (its TPOT is their mean).
    "itls": [[tp / 1000.0] * (a.max_tokens - 1) for tp in tpots],
    "errors": [""] * a.iterations,
}
with open(a.out, "w") as f:
    json.dump(result, f)
