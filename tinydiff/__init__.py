"""tinydiff: diffusion models that write MNIST digits as tiny videos.

Modules, one concept each: `data` (digits to writing videos), `schedule` (the noise schedule),
`model` (the dual-branch 3D U-Net), `sampling` (DDPM, DDIM, DPM-Solver++), `train`, `checkpoint`, `metrics`,
`viz`, `drawing` (your own drawing as a digit), `pipeline`, `cascade` (a 2D digit model, then an image-to-video model),
`cli`. Importing the package does no work: no data, models or training.
"""

from .cascade import Cascade
from .errors import CheckpointError, ConfigError, DataError, InputError, TinydiffError, TrainingError
from .model import ModelConfig, VideoUNet, preset
from .pipeline import Pipeline, pretrained
from .schedule import NoiseSchedule

__version__ = "0.2.0"

__all__ = [
    "Cascade", "CheckpointError", "ConfigError", "DataError", "InputError", "ModelConfig", "NoiseSchedule",
    "Pipeline", "TinydiffError", "TrainingError", "VideoUNet", "preset", "pretrained", "__version__",
]
