"""The benchmark harness (``paraexec bench``) and its HTML report.

``harness`` runs every (executor, workers) pair on identical pre-generated signed blocks, each on
its own fresh store, and compares every root with ``sequential``; ``bound`` turns the dependency
analysis into the inherent speedup bound; ``report`` renders the JSON result as a
self-contained HTML page; ``commands`` is the CLI front end. Nothing in the core imports this.
"""
