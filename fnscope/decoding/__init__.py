"""Decoding helpers shared by the receivers and the store-side CloudTrail mapping: compression, JSON text, ARNs,
and the two error kinds decoding raises."""
