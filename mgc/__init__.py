"""mgc: MGCNet (Shang et al., ECCV 2020) in TensorFlow 2 with its own
rasterizer ops. Subpackages import only downwards:
geometry < render (see docs/ARCHITECTURE.md)."""
