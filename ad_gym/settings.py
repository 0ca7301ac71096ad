"""Config dataclasses that explain themselves: each field carries its one-line meaning.

    @dataclass
    class MyConfig:
        updates: int = setting(2000, "optimiser updates")

``describe_fields(MyConfig)`` lists them (the CLI's ``--help`` prints it) and
``config_from_pairs`` builds one from ``--set`` pairs, naming the valid fields on a typo.
"""

from __future__ import annotations

from dataclasses import MISSING, field, fields
from typing import Any


def setting(default: Any, help: str, factory=None):
    """A config field with its one-line meaning, which ``--help`` and `describe_fields` print
    (``factory`` instead of ``default`` for a mutable default, as ``dataclasses.field``'s)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def describe_fields(config_class) -> str:
    """One line per field of a config dataclass: name, default and meaning."""
    lines = []
    for f in fields(config_class):
        default = repr(f.default_factory() if f.default is MISSING else f.default)
        lines.append(f"  {f.name} = {default}" + (f": {f.metadata['help']}" if "help" in f.metadata else ""))
    return "\n".join(lines)


def config_from_pairs(config_class, values: dict[str, Any]):
    """``config_class(**values)``, refusing an unknown field by naming the valid ones."""
    known = [f.name for f in fields(config_class)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} field(s) {unknown}; valid fields: {', '.join(known)}")
    return config_class(**values)
