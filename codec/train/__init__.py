"""Fitting a codec to one video: options (the only defaults), phases as data, the loop, the
frame cache, checkpoints, the collapse guard, the weight budget, evaluation and DDP.

Only ``latentcast train`` (and the Python API's ``train``) import this package.
"""

from .loop import TrainingRun, train
from .options import TrainOptions

__all__ = ["TrainOptions", "TrainingRun", "train"]
