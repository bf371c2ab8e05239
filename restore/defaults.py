"""Per-task solver defaults, kept free of torch so the command line's help shows them at once.

Chosen on held-out validation crops (not the samples, not the benchmark): with the photo
prior the encoder's estimate is the best denoiser (refining the MAP fits the noise),
refinement helps super-resolution, and inpainting refines within the encoder's posterior of
the smooth first fill, so codes under a large hole stay where the encoder put them instead
of shrinking to the mean or drifting to fit the hole's border.
"""

TASK_DEFAULTS = {
    "denoise": {"steps": 0, "prior_weight": 1.0},
    "inpaint": {"steps": 30, "prior_weight": 1.0, "anchor": "encoder"},
    "superres": {"steps": 30, "prior_weight": 1.0},
}
#: Noise assumed in an image that is not noisy, only incomplete (holes, low resolution).
CLEAN_SIGMA = 1.0
