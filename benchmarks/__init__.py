"""asv benchmarks for qcnn (see docs/bench.md). Backends are an asv parameter; the ones
not installed or not loadable here are skipped in ``setup``."""
