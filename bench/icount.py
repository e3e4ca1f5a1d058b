"""One pass of the perps benchmark blocks through ``sequential`` (no signatures, in-memory
store), run ``N`` times after the setup: the workload for ``bench/icount.sh``.

    python bench/icount.py N

Prints the last block's state root of each pass, so a change that alters results shows at once.
"""

from __future__ import annotations

import sys

from paraexec.bench.harness import BenchConfig, ChainConfig, generate_blocks, make_workload, timed_run
from paraexec.execution.registry import make_executor


def main() -> None:
    passes = int(sys.argv[1])
    workload = make_workload("perps", seed=0, accounts=1000, markets=8, shock_at=2)
    config = ChainConfig(workload.chain_id, workload.app_name, workload.genesis_config())
    blocks = generate_blocks(workload, 3, 3000)
    bench = BenchConfig(workload="perps", store="memory", verify_signatures=False)
    executor = make_executor("sequential", 1)
    for _ in range(passes):
        result = timed_run(config, blocks, executor, bench, "icount", None, "icount")
        print(result.blocks[-1].root[:16])


if __name__ == "__main__":
    main()
