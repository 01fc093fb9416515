"""Train and export every model (``make models``): ``python -m models.train_all [NAME ...]``.

RECIPES is a plain list of (name, module): each module has a ``main()`` that builds its data if
missing, trains, exports ``models/<name>.onnx`` and writes its model card. Add a model by
appending one line.
"""
from __future__ import annotations

import importlib
import sys
import time

RECIPES = [
    ("pace", "models.pace.train"),
    ("embed", "models.embed.train"),
]


def main(argv=None) -> int:
    wanted = set(argv if argv is not None else sys.argv[1:])
    unknown = wanted - {name for name, _ in RECIPES}
    if unknown:
        print(f"unknown model(s): {sorted(unknown)}; known: {[n for n, _ in RECIPES]}", file=sys.stderr)
        return 2
    for name, module in RECIPES:
        if wanted and name not in wanted:
            continue
        t0 = time.time()
        print(f"== {name} ({module})", flush=True)
        importlib.import_module(module).main()
        print(f"== {name} done in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
