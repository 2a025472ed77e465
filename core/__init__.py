"""Torch-free contracts every stage shares: errors, volume geometry, amplitude scaling, the model card."""
