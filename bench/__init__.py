"""`make bench`: the real stack under load, beside baselines measured in the same run.

See docs/benchmarks.md for the results and how to run them; `python -m bench.run --help` for options.
"""

# The exit status of a sub-benchmark (bench/events.py, ...) that ran but missed a target: its report
# says which. Any other non-zero status means it failed to run.
TARGETS_MISSED = 3
