"""Training: losses (losses.py); data mixing and the DeepSpeed loop build on them."""
