"""S2VC Studio comparison engine: baseline codecs, metrics, results, BD-rate and plots (see the submodules)."""
