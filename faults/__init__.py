"""Fault injection: load a distributed fnscope, `kill -9` its parts at random moments, and account for every
acknowledged event. `python -m faults --help` runs it; `bench/faults.py` runs it at a larger scale."""
