"""Thin adapters to the engines and trainers people already use: Ray (distributed generation and
verification), verl (dataset export and `compute_score`), OpenRLHF (a remote reward server) and Hugging
Face `datasets`. Each module imports its engine lazily, so `import taskforge` never needs any of them."""
