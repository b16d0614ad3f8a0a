"""ModelDeployment: kopf wiring only. The decisions are ``arclight.serving.plan`` (pure); the
frame, the watches and the generic apply are ``arclight.framework``."""
from arclight.framework.wiring import register
from arclight.serving.kind import MODEL_DEPLOYMENT

register(MODEL_DEPLOYMENT)
