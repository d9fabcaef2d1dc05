"""Benchmark protocols: AFLW2000-3D 68-point NME. Top of the library's
import ladder (may import any mgc package; experiments/ import it)."""
from mgc.eval import aflw2000

__all__ = ["aflw2000"]
