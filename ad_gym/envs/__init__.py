"""The environments of ad-gym, registered with Gymnasium on import.

Each id is registered twice: in the ``ad_gym`` namespace (``"ad_gym/DarkRoom-v0"``) and as the
plain id users type (``"DarkRoom-v0"``).
"""

from gymnasium.envs.registration import register, registry

from ad_gym.envs.adversarial_bandit import AdversarialBanditEnv
from ad_gym.envs.dark_key_to_door import DarkKeyToDoorEnv, KeyFlagObservation
from ad_gym.envs.dark_room import DarkRoomEnv
from ad_gym.envs.dark_room_hard import DarkRoomHardEnv
from ad_gym.envs.watermaze import WatermazeEnv
from ad_gym.envs.tasks import NAMESPACE, canonical_env_id, env_ids, family, oracle_for, task_key, tasks


def _register_all() -> None:
    for env_id in env_ids():
        fam = family(env_id)
        for registered_id in (f"{NAMESPACE}/{env_id}", env_id):
            if registered_id not in registry:
                # No max_episode_steps: each env truncates at its own horizon, which stays
                # configurable through the constructor (a TimeLimit would override it).
                register(id=registered_id, entry_point=fam.entry_point, kwargs=dict(fam.kwargs))


_register_all()

__all__ = [
    "AdversarialBanditEnv",
    "DarkKeyToDoorEnv",
    "DarkRoomEnv",
    "DarkRoomHardEnv",
    "KeyFlagObservation",
    "WatermazeEnv",
    "canonical_env_id",
    "env_ids",
    "family",
    "oracle_for",
    "task_key",
    "tasks",
]
