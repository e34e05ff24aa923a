"""Benchmarks of generated (static) models against the graph-walking DynamicNetwork.

``modes`` (what is measured), ``timing`` (how), ``runner`` (the loop), ``environment`` (what it
ran on), ``report`` (output).
"""
