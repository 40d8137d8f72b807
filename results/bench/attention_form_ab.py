"""A/B of the CPU bf16 attention forms (echojepa/models/attention.py) in a real probe training: the demo
world's LVEF probe on the random-init encoder (scripts/study_val_probe.py, validation only), its
train_probe_bank timed, with the attention as chosen (chunked at this shape) or forced explicit.

    .venv/bin/python results/bench/attention_form_ab.py chunked   # or: explicit   (needs `make demo`'s demo/)
"""

import runpy
import sys
import time

import echojepa.models.attention as A

if sys.argv[1] == "explicit":
    A.CHUNK_FROM = 1 << 62
sys.argv = [
    "study_val_probe.py",
    "--study",
    "demo",
    "--root",
    "demo",
    "--task",
    "lvef",
    "--run",
    "random_vit:0:0",
    "--store",
    "/tmp/svp2",
]
t = time.time()
import echojepa.probe.fit as F

orig = F.train_probe_bank


def timed(*a, **k):
    t0 = time.perf_counter()
    r = orig(*a, **k)
    print("TRAIN_S", round(time.perf_counter() - t0, 2))
    return r


import echojepa.probe.training as T

T.train_probe_bank = timed
runpy.run_path("scripts/study_val_probe.py", run_name="__main__")
