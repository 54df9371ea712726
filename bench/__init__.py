"""cvtrace's benchmarks (not tests): ``python -m bench`` (or ``make bench``).

Each benchmark measures side by side, in one run, with variants interleaved round by
round, because these machines are shared and noisy. Results print as Markdown tables
and are saved under the bench data directory (``.bench-data/`` by default) as JSON
and Markdown; ``BENCHMARKS.md`` reports them. ``python -m bench --help`` lists the
benchmarks; ``--quick`` is a smoke run of about a minute.
"""
