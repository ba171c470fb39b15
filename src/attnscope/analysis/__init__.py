"""Analysis: pure functions over traces and numpy arrays — no torch, no model, no I/O.

Aggregation over heads and layers, rollout, flow, head metrics, units of text, prompt parts,
comparisons of traces, rank agreement and row statistics. Methods that run the model again live
in :mod:`attnscope.attribution`; the catalogue of all methods in :mod:`attnscope.methods`.
"""
