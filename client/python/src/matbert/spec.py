"""Job specs for SubmitJob: a TOML file's text, or TOML written from a dict; and overrides in
the "section.key=value" form of matbertctl's --set."""
import json
import math
import os


def toml_value(value):
    """A TOML literal for a Python value (bool, int, float, str, or a list of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{value} has no TOML literal matbert accepts")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: the same escapes as JSON
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a spec value")


def spec_toml(spec):
    """(TOML text, source name for error messages) of a path or a {section: {key: value}}."""
    if isinstance(spec, (str, os.PathLike)):
        with open(spec) as f:
            return f.read(), os.path.basename(os.fspath(spec))
    if isinstance(spec, dict):
        lines = []
        for section, keys in spec.items():
            if not isinstance(keys, dict):
                raise TypeError(f"spec[{section!r}] must be a dict of keys, got {keys!r}")
            lines.append(f"[{section}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in keys.items()]
            lines.append("")
        return "\n".join(lines), "spec"
    raise TypeError(f"spec must be a path or a dict of sections, got {type(spec).__name__}")


def override(key, value):
    """"training.lr=0.0003" for ("training.lr", 3e-4)."""
    if key.count(".") != 1:
        raise ValueError(f"override key {key!r} must be section.key, e.g. training.lr")
    return f"{key}={toml_value(value)}"
