"""`make demo`: the showcase (perps with a price shock on the LMDB default store, produced with the
parallel executor, verified by a sequential replay, summarised, with an HTML report).

The work lives in ``paraexec.bench.showcase``; this module only gives it a short name.
"""

from __future__ import annotations

from .bench.showcase import main

if __name__ == "__main__":
    main()
