"""Training the GFN, streaming prediction, evaluation and the guided-filter grid search."""

from core.training.evaluate import evaluate_model, grid_search_gf
from core.training.predict import Prediction, predict
from core.training.trainer import TrainConfig, TrainResult, train

__all__ = ["Prediction", "TrainConfig", "TrainResult", "evaluate_model", "grid_search_gf", "predict", "train"]
