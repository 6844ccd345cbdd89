"""The transformer score network."""

from fdbench.model.config import LAYOUTS, PRESETS, ModelConfig
from fdbench.model.transformer import ScoreTransformer, build_model

__all__ = ["LAYOUTS", "PRESETS", "ModelConfig", "ScoreTransformer", "build_model"]
