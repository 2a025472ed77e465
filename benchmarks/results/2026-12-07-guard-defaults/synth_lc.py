import sys, os; variant = sys.argv[1]; sys.argv = ["x", "card"]
src = open("/work/runs/fexp/lowcut.py").read().replace('variant = sys.argv[1]; sys.argv = ["x", "card"]', "")
exec(src.split('exec("den = fb.reference_denoiser"')[0])
from impeccable.data.families import synthesize_family_pair
from impeccable.data.scoring import score_volumes
denoise = fb.reference_denoiser(Path(os.environ.get("MODEL", "/work/runs/v12")))
for family in ("a", "b"):
    for seed in (900001, 900002):
        for level in ("light", "strong"):
            clean, noisy = synthesize_family_pair(family, 0, seed, (8, 300, 1259), level)
            print(f"{family} {seed} {level:6s} noisy {score_volumes(clean, noisy):.4f} -> denoised "
                  f"{score_volumes(clean, denoise(noisy, 4.0)):.4f}", flush=True)
        print(f"{family} {seed} clean-in {score_volumes(clean, denoise(clean, 4.0)):.4f}", flush=True)
