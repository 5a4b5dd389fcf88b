"""S3Attention (smoothed skeleton sketching), registered as the variant ``s3attention``."""

from attnzoo.zoo.s3attention.diagnostics import incoherence
from attnzoo.zoo.s3attention.layer import S3Attention, S3Params
from attnzoo.zoo.s3attention.skeleton import feature_branch, sampled_positions, token_branch
from attnzoo.zoo.s3attention.smoother import FourierConv, Smoother, direct_circular_convolution

__all__ = [
    "FourierConv",
    "S3Attention",
    "S3Params",
    "Smoother",
    "direct_circular_convolution",
    "feature_branch",
    "incoherence",
    "sampled_positions",
    "token_branch",
]
