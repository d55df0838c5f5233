"""What each command does, as plain functions returning typed summaries (the CLI renders them).

One module per command family: tile runs (predict, fetch, explain), the richness baseline,
training, and the mock's frames, comparison plots and oracles. Nothing here prints.
"""
