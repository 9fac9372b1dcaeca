"""Receivers: native AWS and OTLP wire formats in, normalized events out."""
