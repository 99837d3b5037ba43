"""shared.task: the competition: its facts, data format, metric, prompts, mean prompt, validation set, submission and shards.

competition  the competition's facts (shared/data/kaggle.yaml): budget, samples, with sources
dataio    the competition's CSV format both ways (pairs in, submissions out), every bad cell named
metrics   the competition's SCS metric (sentence-t5-base, or the embedded MiniLM stand-in)
prompts   prompt-recovery strategies as data (prompt_templates.yaml), run on any model
mean_prompt  an optimized constant prompt: greedy or beam search over words of training prompts
validation  the lab's validation set: reproducible (text, prompt) pairs, their rewrites, a split by prompt
submit    python -m shared submit: a resumable submission.csv, its speed projection and score
shards    --shard i/n of a submission and python -m shared shards, the merge of the parts by id
"""
