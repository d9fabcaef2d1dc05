"""Training tuples of the original MGCNet (MGCNET_REFERENCE.md §1.2-1.3):
the on-disk layout, a tf.data reader and TFRecord shards. The layout module
needs no TensorFlow until pixels are read."""
from mgc.data.layout import Tuple
from mgc.data.layout import TupleError
from mgc.data.layout import read_cam
from mgc.data.layout import read_list
from mgc.data.layout import read_tuple
from mgc.data.layout import write_list
from mgc.data.layout import write_tuple

__all__ = [
    "Tuple", "TupleError", "read_cam", "read_list", "read_tuple", "write_list", "write_tuple",
]
