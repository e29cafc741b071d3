"""One point of a parameter scan: writes its arguments (and a made-up result) to result.json.

Called as ``python3 scan.py --label LABEL ENERGY SEED``.
"""

import argparse
import json
import random

parser = argparse.ArgumentParser()
parser.add_argument("--label", default="scan")
parser.add_argument("energy", type=float)
parser.add_argument("seed", type=int)
options = parser.parse_args()

rng = random.Random(options.seed)
result = {
    "label": options.label,
    "energy": options.energy,
    "seed": options.seed,
    "value": options.energy * rng.random(),
}
with open("result.json", "w", encoding="utf-8") as handle:
    json.dump(result, handle, indent=2)
print(json.dumps(result))
