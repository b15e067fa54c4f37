"""Aggregation semantics, pure: what DTrace's aggregating functions mean once the kernel has
counted (bucket math, merged values, normalize, sort order, DataFrames, the timeline).

Nothing here reads a map or formats text: runtime/aggregations.py reads the maps into
numpy arrays, text/aggregations.py prints what this package computes.
"""
