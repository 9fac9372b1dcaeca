"""fnscope: observability and audit for serverless functions."""

__version__ = "0.1.0"
