"""Training tuples of the original MGCNet (MGCNET_REFERENCE.md §1.2-1.3).

`mgc.data.layout` (imported here) is the on-disk layout and needs no
TensorFlow until pixels are read; the TensorFlow readers are imported by
module: `mgc.data.reader` (tuple_dataset) and `mgc.data.tfrecord`
(write_shards, tfrecord_dataset)."""
from mgc.data.layout import Tuple
from mgc.data.layout import TupleError
from mgc.data.layout import read_cam
from mgc.data.layout import read_list
from mgc.data.layout import read_tuple
from mgc.data.layout import write_list
from mgc.data.layout import write_tuple
from mgc.data.prepare import PrepareSetupError
from mgc.data.prepare import prepare_dataset

__all__ = [
    "Tuple", "TupleError", "read_cam", "read_list", "read_tuple", "write_list", "write_tuple",
    "PrepareSetupError", "prepare_dataset",
]
