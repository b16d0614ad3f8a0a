"""TrainingRun: kopf wiring only. The decisions are ``arclight.training.plan`` (pure); the
frame, the watches and the generic apply are ``arclight.framework``."""
from arclight.framework.wiring import register
from arclight.training.kind import TRAINING_RUN

register(TRAINING_RUN)
