# scripts/scaling_model.py on measurements made up from known links: the fit recovers their
# latency and bandwidth, predicts the held-out 4-host all-reduces and the bucketed gradient
# all-reduces exactly, draws its figure, and names a file it cannot fit.
source "$(dirname "$0")/common.sh" "$@"
MODEL="$SRC/../scripts/scaling_model.py"
"$PYTHON" - "$WORK/m.json" <<'PY'
import json, sys
# Two links: latency a, bandwidth B (bytes/s); ring all-reduce T = 2(p-1)a + 2(p-1)/p n/B.
links = {"1gbit": (50e-6, 0.9e9 / 8), "10gbit": (30e-6, 8e9 / 8)}
ring = lambda n, p, a, b: 2 * (p - 1) * a + 2 * (p - 1) / p * n / b
rows = []
for rate, (a, b) in links.items():
    for p in (2, 4):
        for n in (4096 * 4**i for i in range(8)):
            rows.append({"kind": "allreduce", "rate": rate, "ranks": p, "bytes": n, "seconds": ring(n, p, a, b)})
    # 10 buckets of 4 MB, uncompressed and fp16 (half the bytes in transit).
    for c, sent in (("none", 4e6), ("fp16", 2e6)):
        rows.append({"kind": "gradients", "rate": rate, "model": "resnet18", "ranks": 2, "bytes": 40e6, "buckets": 10,
                     "bucket_mb": 25, "compress": c, "seconds": 10 * ring(sent, 2, a, b), "bare_seconds": 0})
with open(sys.argv[1], "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
PY
run_expect 0 "$WORK/o" -- "$PYTHON" "$MODEL" --in "$WORK/m.json" --plot "$WORK/s.png"
# latency, fitted bandwidth, share of the line rate, fit error, held-out error
expect_contains "$WORK/o" "| 1 Gb/s | 50 us | 0.90 Gb/s | 0.90 | median abs. error 0%, max 0% (8 points) | median abs. error 0%, max 0% (8 points) |"
expect_contains "$WORK/o" "| 10 Gb/s | 30 us | 8.00 Gb/s | 0.80 |"
expect_contains "$WORK/o" "All: median abs. error 0%, max 0% (4 points)."
expect_contains "$WORK/o" "a = 30 us and 80% of line rate from the 10 Gb/s fit"
[ -s "$WORK/s.png" ] || fail "no figure"
# Predictions: one node needs no network; more nodes only lose efficiency.
"$PYTHON" - "$WORK/o" <<'PY'
import sys
rows = [l.split("|")[1:-1] for l in open(sys.argv[1]) if l.startswith("| 10 Gb/s | after backward")]
assert len(rows) == 2, rows  # ResNet-50 and ViT-B/16
for r in rows:
    e = [float(x) for x in r[2:]]
    assert e[0] == 1.0 and all(x >= y for x, y in zip(e, e[1:])) and 0 < e[-1] < 1, r
print("predictions ok")
PY
echo '{"kind": "anchor", "rate": "off"}' > "$WORK/bad.json"
run_expect 1 "$WORK/o" -- "$PYTHON" "$MODEL" --in "$WORK/bad.json"
expect_contains "$WORK/o" "bad.json: no 2-host all-reduce sizes to fit"
echo "1 passed, 0 failed"
