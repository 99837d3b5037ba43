"""shared.speed: how fast a model runs on a machine: roofline, calibration on rows, the predictor, model files, this machine's peaks; reusable by any iteration.

Its modules, one line each, are indexed once in shared/__init__.py.
"""
