"""mosnet's benchmarks, each against a reference measured in the same run.

``python -m bench`` (or ``bench/run.py``) runs them, prints their tables,
merges their figures into bench/results.json and draws bench/results.png.
One subpackage per benchmark (native, probe, qemu, size, footprint, proxy,
buildtime), the fuzzers in ``fuzz``, and what several of them share in
``common``. See bench/README.md.
"""
