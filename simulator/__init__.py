"""Synthetic Lambda traffic: a seeded scheduler, renderers for the real AWS wire formats, and an HTTP sender."""
