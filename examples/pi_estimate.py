"""Estimate pi from random points; one run per seed. Writes pi_<seed>.json."""

import json
import random
import sys

seed, samples = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
inside = sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
with open(f"pi_{seed}.json", "w", encoding="utf-8") as out:
    json.dump({"seed": seed, "samples": samples, "inside": inside}, out)
print(f"seed {seed}: {inside}/{samples} inside")
