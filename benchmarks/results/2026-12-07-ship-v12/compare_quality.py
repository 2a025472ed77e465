"""v5 (2026-12-01 run) against the candidate, per volume: the same benchmark command, seeds and engine.

    python compare_quality.py OLD.json NEW.json [OLD_NAME NEW_NAME [ENGINE]]   # v5, v12, openvino:bf16 by default
"""
import json, sys
import numpy as np
old, new = (json.load(open(p)) for p in sys.argv[1:3])
a, b = sys.argv[3:5] if len(sys.argv) >= 5 else ("v5", "v12")
engine = sys.argv[5] if len(sys.argv) >= 6 else "openvino:bf16"
k, c = f"model {engine}", f"clean-in model {engine}"
idx = {(r["family"], r["level"], r["seed"]): r["scores"] for r in old["rows"]}
print(f"| family | level | seed | noisy | {a} | {b} | {b} - {a} | clean-in {a} | clean-in {b} |")
print("|---|---|---|---|---|---|---|---|---|")
agg = {}
for r in new["rows"]:
    key = (r["family"], r["level"], r["seed"]); o = idx[key]; s = r["scores"]
    print(f"| {key[0]} | {key[1]} | {key[2]} | {s['noisy']:.4f} | {o[k]:.4f} | {s[k]:.4f} | {s[k]-o[k]:+.4f} | {o[c]:.4f} | {s[c]:.4f} |")
    agg.setdefault(key[:2], []).append((s["noisy"], o[k], s[k], o[c], s[c]))
print()
print(f"| family | level | noisy | {a} | {b} | {b} better on | clean-in {a} (min) | clean-in {b} (min) |")
print("|---|---|---|---|---|---|---|---|")
for key, v in agg.items():
    v = np.array(v)
    print(f"| {key[0]} | {key[1]} | {v[:,0].mean():.3f} | {v[:,1].mean():.3f} | {v[:,2].mean():.3f} | {int((v[:,2] > v[:,1]).sum())}/{len(v)} | {v[:,3].mean():.3f} ({v[:,3].min():.3f}) | {v[:,4].mean():.3f} ({v[:,4].min():.3f}) |")
