"""Sweep: kopf wiring only. The decisions are ``arclight.search.plan`` (pure, with Optuna in
``arclight.search.sampler``); the frame, the watches and the generic apply are
``arclight.framework``."""
from arclight.framework.wiring import register
from arclight.search.kind import SWEEP

register(SWEEP)
