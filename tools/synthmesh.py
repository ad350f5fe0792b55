"""Generate a synthetic mesh of N flows into a folder (scale checks of discover/plan).

python tools/synthmesh.py --flows 1000 --out /tmp/mesh1000
meshops --repo /tmp/mesh1000 plan --env prod --json > /dev/null
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from meshops.testing.mesh import init_repo, synthetic

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="default: a new temporary folder")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="meshops-synth-"))
    started = time.perf_counter()
    synthetic(out, ROOT, args.flows)
    init_repo(out)
    print(f"{args.flows} flows written to {out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
