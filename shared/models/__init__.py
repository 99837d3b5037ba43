"""shared.models: the LLMs: catalog, loading (the only importer of the backends), the interface, the backends, generation timing; imports only the ground.

Its modules, one line each, are indexed once in shared/__init__.py.
"""
