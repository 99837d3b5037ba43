"""shared.models: the LLMs: catalog, loading (the only importer of the backends), the interface, the backends, generation timing; imports only the ground.

catalog   models.yaml and where each model's files are (embedded packages, hub, paths)
loading   load(name, backend=...) -> LoadedModel, with every argument checked first
model     LoadedModel, the interface every backend implements (generate_batch included)
hf        the transformers backend (GGUF converted once and cached, bitsandbytes 8/4-bit)
llamacpp  the llama.cpp backend (GGUF as LM Studio runs it)
vllm_engine  the vLLM backend: batches of prompts through vLLM (GGUF via hf's cached conversion)
tokens    rules every backend shares: one stop set, literal prompt text, whole characters, empty input
timing    generate(), benchmark() and generate_batch(): one record per call, prefill and decode apart
envs      which Python runs a backend: vLLM's own environment (.venv-vllm), layered on the lab's
"""
