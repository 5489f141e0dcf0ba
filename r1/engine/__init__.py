"""The inference engine shared by RL, evaluation, chat and the server (see `engine.py`)."""

from r1.engine.engine import Engine
from r1.engine.requests import Completion, RequestDone, RequestHandle, Sample, SampleDone, TokenEvent
from r1.engine.sampling import SamplingParams

__all__ = [
    "Completion",
    "Engine",
    "RequestDone",
    "RequestHandle",
    "Sample",
    "SampleDone",
    "SamplingParams",
    "TokenEvent",
]
