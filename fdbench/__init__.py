"""fdbench: theory-and-validation benchmarks for caching-accelerated frequency-domain
diffusion models for time series."""

__version__ = "0.1.0"
