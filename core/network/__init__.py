"""The Guided Filter Network: config, backbones, modules, factory, checkpoints."""

from core.network.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from core.network.config import ABLATIONS, BACKBONES, GFNConfig
from core.network.factory import build_model

__all__ = ["GFNConfig", "BACKBONES", "ABLATIONS", "build_model", "save_checkpoint", "load_checkpoint", "Checkpoint"]
