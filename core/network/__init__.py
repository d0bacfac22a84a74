"""The Guided Filter Network: config, backbones, modules, factory, checkpoints."""

from core.network.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from core.network.config import ABLATIONS, BACKBONES, GFNConfig
from core.network.factory import build_model

__all__ = ["ABLATIONS", "BACKBONES", "Checkpoint", "GFNConfig", "build_model", "load_checkpoint", "save_checkpoint"]
