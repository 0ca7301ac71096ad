"""In-context RL methods, one module each, behind one interface (`Method`).

Every module of this package is imported here, so each method registers itself (`register`) and
a new method is one new module. ``METHODS`` maps each registered method's name to its class;
`load_agent` returns the agent for any checkpoint or shipped model, whichever method trained it.
"""

import importlib
import pkgutil

from ad_gym.methods.base import METHODS, Collection, Method, RunData, load_agent, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "Collection", "Method", "RunData", "load_agent", "register"]
