"""shared.task: the competition: its facts, data format, metric, prompts, mean prompt, validation set, submission and shards.

Its modules, one line each, are indexed once in shared/__init__.py.
"""
