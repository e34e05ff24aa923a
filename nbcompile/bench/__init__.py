"""Benchmarks of generated (static) models against the graph-walking DynamicNetwork.

``modes`` (what is measured), ``timing`` (how), ``runner`` (the loop), ``report`` (output).
"""
