"""Networks, datasets, training, evaluation, baselines and explanations."""
