"""Random durations and speeds for a scenario: small pydantic models that sample themselves.

A distribution is written in a scenario file as a mapping with a ``dist`` tag::

    dwell_s: {dist: lognormal, median: 30, sigma: 0.6}
    service_s: {dist: exponential, mean: 45}
    speed_mps: {dist: normal, mean: 1.2, sd: 0.15, low: 0.7, high: 1.7}
    pause_s: {dist: uniform, low: 5, high: 30}
    walk_s: {dist: fixed, value: 10}
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fixed(_Dist):
    """Always the same value."""

    dist: Literal["fixed"]
    value: float = Field(ge=0)

    def mean(self) -> float:
        """The expected value."""
        return self.value

    def sample(self, rng: np.random.Generator) -> float:
        """Draw one value (always ``value``)."""
        return self.value


class Lognormal(_Dist):
    """A log-normal: ``median * exp(sigma * N(0, 1))``."""

    dist: Literal["lognormal"]
    median: float = Field(gt=0)
    sigma: float = Field(ge=0, le=3)

    def mean(self) -> float:
        """The expected value, ``median * exp(sigma**2 / 2)``."""
        return self.median * math.exp(self.sigma**2 / 2)

    def sample(self, rng: np.random.Generator) -> float:
        """Draw one value."""
        return float(self.median * math.exp(self.sigma * rng.standard_normal()))


class Exponential(_Dist):
    """An exponential with the given mean."""

    dist: Literal["exponential"]
    mean_s: float = Field(gt=0, alias="mean")

    def mean(self) -> float:
        """The expected value."""
        return self.mean_s

    def sample(self, rng: np.random.Generator) -> float:
        """Draw one value."""
        return float(rng.exponential(self.mean_s))


class Uniform(_Dist):
    """Uniform between ``low`` and ``high``."""

    dist: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self

    def mean(self) -> float:
        """The expected value."""
        return (self.low + self.high) / 2

    def sample(self, rng: np.random.Generator) -> float:
        """Draw one value."""
        return float(rng.uniform(self.low, self.high))


class Normal(_Dist):
    """A normal, clipped to ``[low, high]``."""

    dist: Literal["normal"]
    mean_v: float = Field(ge=0, alias="mean")
    sd: float = Field(ge=0)
    low: float = Field(0.0, ge=0)
    high: float = math.inf

    @model_validator(mode="after")
    def _ordered(self) -> Normal:
        if not self.low <= self.mean_v <= self.high:
            raise ValueError(
                f"mean {self.mean_v} is outside [low, high] = [{self.low}, {self.high}]"
            )
        return self

    def mean(self) -> float:
        """The mean before clipping."""
        return self.mean_v

    def sample(self, rng: np.random.Generator) -> float:
        """Draw one value."""
        return float(np.clip(rng.normal(self.mean_v, self.sd), self.low, self.high))


Distribution = Annotated[
    Fixed | Lognormal | Exponential | Uniform | Normal, Field(discriminator="dist")
]
"""Any of the distributions, chosen by the ``dist`` key."""
