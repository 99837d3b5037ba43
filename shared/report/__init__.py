"""shared.report: rows into tables, figures and generated report blocks.

Its modules, one line each, are indexed once in shared/__init__.py.
"""
