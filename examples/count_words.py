"""Count lines and words of this subjob's input files; write them to counts.json.

jobfleet lists a subjob's input files, as JSON, in __BACKEND_INPUT_FILES__.json in
its working directory (jobfleet.get_input_data() reads it; plain json is used here
so the example runs with any python3).
"""

import json
import sys

with open("__BACKEND_INPUT_FILES__.json", encoding="utf-8") as handle:
    input_files = json.load(handle)

counts = {}
for path in input_files:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    counts[path] = {"lines": len(text.splitlines()), "words": len(text.split())}

result = {
    "args": sys.argv[1:],
    "files": counts,
    "total_words": sum(c["words"] for c in counts.values()),
}
with open("counts.json", "w", encoding="utf-8") as handle:
    json.dump(result, handle, indent=2)
print(f"counted {result['total_words']} words in {len(counts)} files")
