"""Coefficient vectors: MGCNet's 257-layout and the general one for any ranks.

Order (MGCNet, MGCNET_REFERENCE.md §3.1): identity, albedo (texture),
expression, pose delta [rz, ry, rx, tx, ty, tz] (rad, mm), SH lighting
27 = (R, G, B) x 9 bands.
"""
import dataclasses

import tensorflow as tf

POSE_SIZE = 6
LIGHTING_SIZE = 27


@dataclasses.dataclass(frozen=True)
class CoefficientLayout:
    identity: int = 80
    albedo: int = 80
    expression: int = 64

    @classmethod
    def for_model(cls, model):
        """The layout of a FaceModel's ranks."""
        return cls(model.identity_rank, model.albedo_rank, model.expression_rank)

    @property
    def sizes(self):
        return (self.identity, self.albedo, self.expression, POSE_SIZE, LIGHTING_SIZE)

    @property
    def size(self):
        return sum(self.sizes)

    def split(self, coefficients):
        """[..., size] -> dict of identity, albedo, expression, pose, lighting."""
        coefficients = tf.convert_to_tensor(coefficients, tf.float32)
        if coefficients.shape[-1] != self.size:
            raise ValueError(f"coefficients must have {self.size} entries in the last axis "
                             f"({self}), got shape {coefficients.shape}")
        parts = tf.split(coefficients, self.sizes, axis=-1)
        return dict(zip(("identity", "albedo", "expression", "pose", "lighting"), parts))

    def join(self, identity, albedo, expression, pose, lighting):
        """Inverse of split; every part [..., size_i]."""
        parts = [tf.convert_to_tensor(p, tf.float32) for p in (identity, albedo, expression,
                                                               pose, lighting)]
        for name, part, size in zip(("identity", "albedo", "expression", "pose", "lighting"),
                                    parts, self.sizes):
            if part.shape[-1] != size:
                raise ValueError(f"{name} must have {size} entries, got shape {part.shape}")
        return tf.concat(parts, axis=-1)


MGCNET_LAYOUT = CoefficientLayout(80, 80, 64)  # 257 entries
