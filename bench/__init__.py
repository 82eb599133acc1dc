"""`make bench`: the real stack under load, beside baselines measured in the same run.

See docs/benchmarks.md for the results and how to run them; `python -m bench.run --help` for options.
"""
