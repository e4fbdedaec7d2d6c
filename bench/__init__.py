"""Benchmarks of xscontainer-ng's monitor and plugin fast path (`python -m bench`).

Not part of the test suite: they take minutes and measure, rather than check. Results
are printed as a table and written to docs/benchmarks.md with the date and the machine.
"""
