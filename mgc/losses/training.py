"""The losses of one training step, composed as the original's training
graph does (MGCNET_REFERENCE.md §1.4): per view the render, landmark,
photometric, identity and prior terms; across views the relative poses,
covisibility, inverse warps and the pixel, SSIM, depth and epipolar terms;
then the gating and the weighted sums.

    outputs = training_losses(coefficients, batch, model, identity_network, weights)
    outputs.losses["total_loss"], outputs.tensors["viewsyn_image"], ...

A batch is what mgc.data's readers give: images and skins uint8
[B, 3, 224, 224, 3] and landmarks [B, 3, 68, 2] in view order (target,
source1, source2), flag [B] (flag_sgl_mul). Coefficients are the encoder's
[B, 257] for each view, each view through the encoder on its own (the
original's three passes: view_coefficients).
"""
import collections

import tensorflow as tf

from mgc.facemodel import MGCNET_LAYOUT
from mgc.losses import multi_view, per_view
from mgc.losses.total import LOSS_NAMES, LossWeights, total_loss
from mgc.render.face import render_face

NUM_VIEWS = 3
TrainingOutputs = collections.namedtuple("TrainingOutputs", ["losses", "tensors"])

# The weight that switches each term on (a term of weight 0 is not computed,
# as the original's "if weight > 0"; the priors always are).
_TERM_WEIGHTS = {
    "lm2d_loss": "gpmm_lm_loss_weight",
    "render_loss": "gpmm_pixel_loss_weight",
    "id_loss": "gpmm_id_loss_weight",
    "pixel_loss": "photom_weight",
    "ssim_loss": "ssim_weight",
    "depth_loss": "depth_weight",
    "epi_loss": "epipolar_weight",
}


def view_coefficients(encoder, batch):
    """The encoder on each view of the batch on its own: list of 3 [B, 257]."""
    images = per_view.image_to_float(batch["images"])
    return [encoder(images[:, view]) for view in range(NUM_VIEWS)]


def _needed(weights, all_terms):
    """The loss names to compute: those with a non-zero weight, or all."""
    if all_terms:
        return set(LOSS_NAMES)
    needed = {"reg_shape_loss", "reg_color_loss"}
    for name, flag in _TERM_WEIGHTS.items():
        if getattr(weights, flag) > 0:
            needed.add(name)
    return needed


def _check_batch(batch, coefficients):
    for key in ("images", "skins", "landmarks", "flag"):
        if key not in batch:
            raise ValueError(f"batch has no {key!r} (keys: {sorted(batch)})")
    shape = tuple(batch["images"].shape)
    if len(shape) != 5 or shape[1] != NUM_VIEWS or shape[-1] != 3:
        raise ValueError(f"batch['images'] must have shape [B, 3, H, W, 3], got {list(shape)}")
    if len(coefficients) != NUM_VIEWS:
        raise ValueError(f"coefficients must list {NUM_VIEWS} views, got {len(coefficients)}")


def render_views(coefficients, model, front_only):
    """The three views' renders. The original renders each view on its own;
    one call for all of them gives the same pictures (the rasterizer and the
    normals work per image), with the op's threads spread over 3B images."""
    size = tf.shape(coefficients[0])[0]
    render = render_face(tf.concat(coefficients, axis=0), model, layout=MGCNET_LAYOUT,
                         front_only=front_only)
    return [type(render)(*[field[v * size:(v + 1) * size] for field in render])
            for v in range(NUM_VIEWS)]


def _per_view_terms(coefficients, renders, images, skins, landmarks, identity_network,
                    weights, needed):
    """The five per-view terms (averaged over views) and their tensors."""
    parts = [MGCNET_LAYOUT.split(c) for c in coefficients]
    terms = per_view.regularisation_losses([p["identity"] for p in parts],
                                           [p["expression"] for p in parts],
                                           [p["albedo"] for p in parts])
    composites = [per_view.composite(r.image, r.mask, image) for r, image in zip(renders, images)]
    tensors = dict(render_composite=composites, render_mask=[r.mask for r in renders],
                   skin=skins, lm2d=[r.landmarks_2d for r in renders])
    if "lm2d_loss" in needed:
        lm_weights = per_view.landmark_weights(weights.lm_detail_weight)
        terms["lm2d_loss"] = per_view.average_over_views([
            per_view.landmark_loss(r.landmarks_2d, target, lm_weights)
            for r, target in zip(renders, landmarks)])
    if "render_loss" in needed:
        terms["render_loss"] = per_view.average_over_views([
            per_view.photometric_loss(c, image, skin, r.mask)
            for c, image, skin, r in zip(composites, images, skins, renders)])
    if "id_loss" in needed:
        if identity_network is None:
            raise ValueError("id_loss needs the identity network (identity_network=None)")
        embedded_images = [identity_network(image, target)
                           for image, target in zip(images, landmarks)]
        embedded_renders = [identity_network(c, r.landmarks_2d)
                            for c, r in zip(composites, renders)]
        terms["id_loss"] = per_view.average_over_views([
            per_view.identity_loss(a, b) for a, b in zip(embedded_images, embedded_renders)])
        tensors.update(id_image=embedded_images, id_render=embedded_renders)
    return terms, tensors


def _multi_view_terms(renders, images, landmarks, flags, model, front_only, needed,
                      per_sample_gating, forms, replicas):
    """The four gated multi-view terms and their tensors (target 0, sources 1, 2)."""
    target = renders[0]
    # The mesh the renders' triangle ids index.
    mesh_vertices, mesh_triangles = target.vertices, model.triangles
    if front_only:
        mesh_vertices = tf.gather(target.vertices, model.front_vertices, axis=1)
        mesh_triangles = model.front_triangles
    errors = collections.defaultdict(list)
    tensors = collections.defaultdict(list)
    # The target-frame depth term also warps the source's mask (on_source_face).
    target_frame = "depth_loss" in needed and forms.depth_frame == "target"
    for source_view in range(1, NUM_VIEWS):
        source = renders[source_view]
        pose = multi_view.relative_pose(target.pose, source.pose)
        covisible = multi_view.covisibility_mask(target.triangle_ids, source.triangle_ids,
                                                 mesh_vertices, target.pose, mesh_triangles)
        # Image, depth (and mask) of the source sampled together (channels
        # are independent).
        channels = [images[source_view], source.depth] + ([source.mask] if target_frame else [])
        warped, valid = multi_view.inverse_warp(tf.concat(channels, axis=-1), target.depth, pose)
        warped_image, warped_depth = warped[..., :3], warped[..., 3:4]
        mask = valid * covisible
        if "pixel_loss" in needed:
            errors["pixel_loss"].append(multi_view.pixel_consistency_loss(
                warped_image, images[0], mask, target.mask))
        if "ssim_loss" in needed:
            errors["ssim_loss"].append(multi_view.ssim_loss(warped_image, images[0], mask))
        if "depth_loss" in needed:
            depth_mask = mask
            if target_frame:
                warped_depth = multi_view.source_depth_in_target(warped_depth, target.depth, pose)
                depth_mask = mask * multi_view.on_source_face(warped[..., 4:])
            errors["depth_loss"].append(multi_view.depth_consistency_loss(
                warped_depth, target.depth, depth_mask))
        if "epi_loss" in needed:
            errors["epi_loss"].append(multi_view.epipolar_loss(
                landmarks[0], landmarks[source_view], pose, form=forms.epipolar))
        tensors["rel_pose"].append(pose)
        tensors["covisibility"].append(covisible)
        tensors["viewsyn_image"].append(warped_image)
        tensors["viewsyn_mask"].append(mask)
    terms = multi_view.gate_multi_view(dict(errors), flags, per_sample=per_sample_gating,
                                       replicas=replicas)
    return terms, dict(tensors, depth_target=target.depth)


def training_losses(coefficients, batch, model, identity_network=None, weights=LossWeights(),
                    front_only=True, per_sample_gating=False, all_terms=False,
                    forms=multi_view.TermForms(), replicas=None):
    """Every loss of the original's training step for one batch.

    Args:
      coefficients: list of 3 [B, 257] (target, source1, source2), MGCNet's
        layout (view_coefficients).
      batch: dict with images, skins uint8 [B, 3, H, W, 3], landmarks
        [B, 3, 68, 2] (crop pixels), flag [B] (mgc.data readers).
      model: the FaceModel (MGCNet's h5, or a model with its 257 layout).
      identity_network: callable (images [B, H, W, 3] in [0, 1], landmarks
        [B, 68, 2]) -> unit embeddings (mgc.nets.load_identity_network);
        needed when id_loss is computed.
      weights: LossWeights.
      front_only: render the model's front sub-mesh, as flag_fore=1.
      per_sample_gating: the paper's per-sample flag gating instead of the
        original's executed [B, B] broadcast (multi_view.gate_multi_view).
      all_terms: compute all nine terms, also those whose weight is 0
        (evaluation); otherwise only the weighted ones, as the original.
      forms: multi_view.TermForms, the depth and epipolar terms' forms (the
        default is the original's).
      replicas: multi_view.ReplicaBatch when `batch` is one replica's share
        of a larger batch: the multi-view terms are then this replica's parts
        of the whole batch's (their flag gates couple the samples).

    Returns:
      TrainingOutputs: losses, a dict of the computed terms of LOSS_NAMES
      (unweighted) and common_loss, mgc_loss, total_loss; tensors, a dict of
      the intermediates: per view lists render_composite, render_mask, skin,
      lm2d (and id_image, id_render), per source lists rel_pose,
      covisibility, viewsyn_image, viewsyn_mask, and depth_target.
    """
    _check_batch(batch, coefficients)
    needed = _needed(weights, all_terms)
    images = [per_view.image_to_float(batch["images"][:, v]) for v in range(NUM_VIEWS)]
    skins = [per_view.skin_weights(batch["skins"][:, v]) for v in range(NUM_VIEWS)]
    landmarks = [tf.cast(batch["landmarks"][:, v], tf.float32) for v in range(NUM_VIEWS)]
    renders = render_views(coefficients, model, front_only)
    terms, tensors = _per_view_terms(coefficients, renders, images, skins, landmarks,
                                     identity_network, weights, needed)
    if needed & set(multi_view.GATES):
        gated, multi_tensors = _multi_view_terms(renders, images, landmarks, batch["flag"],
                                                 model, front_only, needed, per_sample_gating,
                                                 forms, replicas)
        terms.update(gated)
        tensors.update(multi_tensors)
    losses = dict(terms, **total_loss(terms, weights))
    return TrainingOutputs(losses, tensors)
