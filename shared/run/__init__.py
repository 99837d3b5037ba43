"""shared.run: running an iteration: parameters, experiments, process lifetime, notebooks, pre-flight, the runbook, the GPU plan; may import every wing.

Its modules, one line each, are indexed once in shared/__init__.py.
"""
