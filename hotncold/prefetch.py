"""command: `python -m hotncold.prefetch <overrides>`: download what a run or a sweep needs.

Run it on a node with internet (a login node) with the arguments the run or sweep will get
(`experiment=hot_vs_cold`, `model=... prm=...`, swept values such as `prm=a,b`); every model,
PRM, tokenizer and dataset the jobs load goes into the Hugging Face cache, and jobs then run
with HF_HUB_OFFLINE=1. The logic is `hotncold.cluster.prefetch`.
"""

import sys

from hotncold.cluster.prefetch import main

USAGE = """usage: python -m hotncold.prefetch [overrides ...]

Downloads into the Hugging Face cache every model, PRM, tokenizer and dataset that the run or
sweep these overrides describe needs (the same overrides as `python -m hotncold -m ...`, e.g.
experiment=hot_vs_cold, or model=qwen2.5-1.5b-instruct prm=qwen_math_prm_7b,rlhflow_8b), then
checks each generator + PRM pair against the card cluster.gpu_memory_gib declares. Exit 0 when
everything is cached and fits; jobs can then run with HF_HUB_OFFLINE=1.
"""

if __name__ == "__main__":
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(USAGE)
        raise SystemExit(0)
    raise SystemExit(main(sys.argv[1:]))
