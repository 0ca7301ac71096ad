"""What every ad_gym env's spec says of its episode length."""

from __future__ import annotations

import dataclasses


class HorizonInSpec:
    """Mixin for envs that end their own episodes after ``self.max_steps`` steps: ``env.spec.
    max_episode_steps`` is that length, whatever ``max_steps=`` was given to ``gym.make``.

    The ids are registered without ``max_episode_steps``: a registered TimeLimit would keep the
    default length when ``max_steps`` changes it, and end longer episodes early. The spec still
    says the length, for `TimeAwareObservation` and any code that reads it."""

    @property
    def spec(self):
        spec = self.__dict__.get("_spec")
        if spec is None or spec.max_episode_steps == self.max_steps:
            return spec
        return dataclasses.replace(spec, max_episode_steps=int(self.max_steps))

    @spec.setter
    def spec(self, value) -> None:  # gym.make sets it
        self.__dict__["_spec"] = value
