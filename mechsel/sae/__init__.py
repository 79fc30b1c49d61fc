"""Sparse autoencoders on ``hook_mlp_out``: loading, training, latent statistics, selectors, views."""
