"""S2VC: a single-step diffusion video codec (I-frame codec, conditional P-frame codec, one-step U-Net, VAE)."""
from .codec import S2VC, FrameResult
from .config import PRESETS, S2VCConfig, official, preset, tiny
from .errors import BitstreamError, CheckpointError, DecoderMismatchError, ModelMismatchError, S2VCError
from .loading import default_checkpoint, from_official, from_pretrained, load_model

__all__ = [
    "S2VC", "FrameResult", "S2VCConfig", "PRESETS", "official", "tiny", "preset", "load_model",
    "from_pretrained", "from_official", "default_checkpoint",
    "S2VCError", "BitstreamError", "CheckpointError", "ModelMismatchError", "DecoderMismatchError",
]
