"""Side by side: two field.json files (usage compare.py A.json B.json [names])."""
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
na, nb = (sys.argv[3:5] if len(sys.argv) > 4 else ("A", "B"))
print(f"| line | removed % {na} / {nb} | SSIM(out, in) | < 8 Hz out/in | 2 ms vs 4 ms | end x | seam | coherence of removed |")
print("|---|---|---|---|---|---|---|---|")
for name in a["lines"]:
    x, y = a["lines"][name], b["lines"][name]
    f = lambda k, fmt: f"{fmt.format(x[k])} / **{fmt.format(y[k])}**"
    print(f"| {name} | {f('removed_pct', '{:.1f}')} | {f('ssim_out_vs_in', '{:.3f}')} | {f('low_freq_ratio', '{:.2f}')} | "
          f"{f('interval_half_rel_diff', '{:.3f}')} | {f('end_removed_over_input_x', '{:.2f}')} | {f('seam_ratio', '{:.2f}')} | "
          f"{f('lateral_coherence_removed', '{:.2f}')} |")
print()
print(f"| case | input | band-pass | {na} | {nb} | {nb} beats band-pass |")
print("|---|---|---|---|---|---|")
for x, y in zip(a["cases"], b["cases"]):
    bp = y["bandpass"]
    wins = y["model"]["snr_db"] > bp["snr_db"] and y["model"]["ssim"] > bp["ssim"]
    print(f"| {y['line']} {y['noise']} | {y['input']['snr_db']:+.1f} | {bp['snr_db']:+.1f} / {bp['ssim']:.3f} | "
          f"{x['model']['snr_db']:+.1f} / {x['model']['ssim']:.3f} | {y['model']['snr_db']:+.1f} / {y['model']['ssim']:.3f} | {'yes' if wins else 'no'} |")
for d, n in ((a, na), (b, nb)):
    s = d["summary"]
    print(f"{n}: mean gain {s['mean_snr_gain_db']:+.2f} dB, beats band-pass {s['beats_bandpass_snr_and_ssim']}/{s['cases']}")
