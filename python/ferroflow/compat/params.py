"""``ParameterTool``, ``Configuration`` and ``Properties``: how talk-era scripts read
their command line (``ParameterTool.fromArgs(sys.argv[1:])``)."""

from __future__ import annotations

import os

from .._errors import FerroflowError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Sequence

__all__ = ["ParameterTool", "ParameterError", "Configuration", "Properties", "NO_VALUE_KEY"]

#: The value Flink stores for a key given without a value (``--local``).
NO_VALUE_KEY = "__NO_VALUE_KEY"

_MISSING: Any = object()


class ParameterError(FerroflowError, ValueError):
    """A malformed command line, a missing required key or a value of the wrong type."""


_NUMBER = r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"


def _is_number(token: str) -> bool:
    # "-5" after a key is its value, not another key. (re is imported here, not at
    # start-up; it keeps the compiled pattern in its cache.)
    import re

    return re.fullmatch(_NUMBER, token) is not None


def _to_bool(value: str) -> bool:
    # Java's Boolean.valueOf: only "true" (any case) is true. A bare flag counts as
    # true here, which is what scripts asking getBoolean("local") mean.
    return value == NO_VALUE_KEY or value.strip().lower() == "true"


class ParameterTool:
    """Read-only ``key -> str`` parameters, as Flink's ``ParameterTool``.

    ``fromArgs(["--input", "f.txt", "--local"])`` gives ``get("input") == "f.txt"``
    and ``has("local")``; a key without a value holds ``NO_VALUE_KEY``."""

    def __init__(self, data: Optional[Mapping[str, str]] = None) -> None:
        self._data: Dict[str, str] = {str(k): str(v) for k, v in (data or {}).items()}

    # -- constructors ---------------------------------------------------------------------

    @staticmethod
    def fromArgs(args: Sequence[str]) -> "ParameterTool":
        """Parses ``--key value``, ``-key value``, ``--key=value`` and bare ``--flag``.
        A token after a key is its value unless it looks like a key itself (negative
        numbers are values). Anything else is an error, as in Flink."""
        args = [str(a) for a in args]
        data: Dict[str, str] = {}
        i = 0
        while i < len(args):
            token = args[i]
            if token.startswith("--"):
                key = token[2:]
            elif token.startswith("-") and not _is_number(token):
                key = token[1:]
            else:
                raise ParameterError(f"error parsing arguments {args!r} on {token!r}: "
                                     "please prefix keys with -- or -")
            value: Optional[str] = None
            if "=" in key:
                key, value = key.split("=", 1)
            if not key:
                raise ParameterError(f"error parsing arguments {args!r}: {token!r} has no key name")
            i += 1
            if value is None:
                if i < len(args) and (not args[i].startswith("-") or _is_number(args[i])):
                    value = args[i]
                    i += 1
                else:
                    value = NO_VALUE_KEY
            data[key] = value
        return ParameterTool(data)

    @staticmethod
    def fromMap(mapping: Mapping[str, Any]) -> "ParameterTool":
        """Parameters from a dict (values are turned into strings)."""
        return ParameterTool(mapping)

    @staticmethod
    def fromPropertiesFile(path: str) -> "ParameterTool":
        """Parameters from a ``key=value`` (or ``key: value``) file; ``#`` and ``!``
        start comments."""
        data: Dict[str, str] = {}
        with open(os.fspath(path), encoding="utf-8") as f:
            for raw in f:
                line = raw.strip()
                if not line or line[0] in "#!":
                    continue
                cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
                if cut < 0:
                    data[line] = ""
                else:
                    data[line[:cut].strip()] = line[cut + 1:].strip()
        return ParameterTool(data)

    # -- reading --------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        """Whether ``key`` was given (with or without a value)."""
        return key in self._data

    def get(self, key: str, default_value: Optional[str] = None) -> Optional[str]:
        """The value of ``key``, or ``default_value`` if it was not given."""
        return self._data.get(key, default_value)

    def getRequired(self, key: str) -> str:
        """The value of ``key``; an error if it is missing or was given without a value."""
        value = self._data.get(key)
        if value is None or value == NO_VALUE_KEY:
            raise ParameterError(f"no value for required parameter --{key}")
        return value

    def _typed(self, key: str, default_value: Any, convert: Any, type_name: str) -> Any:
        if key not in self._data:
            if default_value is _MISSING:
                raise ParameterError(f"no value for required parameter --{key}")
            return default_value
        value = self._data[key]
        try:
            return convert(value)
        except ValueError:
            raise ParameterError(f"parameter --{key} must be {type_name}, got {value!r}") from None

    def getInt(self, key: str, default_value: Any = _MISSING) -> int:
        """``int`` value of ``key`` (an error if missing and no default is given)."""
        return self._typed(key, default_value, int, "an integer")

    def getLong(self, key: str, default_value: Any = _MISSING) -> int:
        """Same as ``getInt`` (Python ints have no size limit)."""
        return self._typed(key, default_value, int, "an integer")

    def getFloat(self, key: str, default_value: Any = _MISSING) -> float:
        """``float`` value of ``key``."""
        return self._typed(key, default_value, float, "a number")

    def getDouble(self, key: str, default_value: Any = _MISSING) -> float:
        """Same as ``getFloat``."""
        return self._typed(key, default_value, float, "a number")

    def getBoolean(self, key: str, default_value: Any = _MISSING) -> bool:
        """True for ``true`` (any case) and for a bare ``--key`` flag; false otherwise."""
        return self._typed(key, default_value, _to_bool, "a boolean")

    def getNumberOfParameters(self) -> int:
        """How many keys were given."""
        return len(self._data)

    def toMap(self) -> Dict[str, str]:
        """A copy of the parameters as a dict."""
        return dict(self._data)

    def getProperties(self) -> "Properties":
        """The parameters as ``java.util.Properties`` (a dict)."""
        return Properties(self._data)

    def getConfiguration(self) -> "Configuration":
        """The parameters as a ``Configuration`` (what ``create_local_execution_environment``
        takes)."""
        return Configuration(self._data)

    def mergeWith(self, other: "ParameterTool") -> "ParameterTool":
        """These parameters overridden by ``other``'s."""
        return ParameterTool({**self._data, **other._data})

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ParameterTool({self._data!r})"


class Configuration:
    """Flink's ``Configuration``: string settings with typed getters and setters."""

    def __init__(self, data: Optional[Mapping[str, Any]] = None) -> None:
        self._data: Dict[str, str] = {str(k): str(v) for k, v in (data or {}).items()}

    def containsKey(self, key: str) -> bool:
        """Whether ``key`` is set."""
        return key in self._data

    def keySet(self) -> Iterable[str]:
        """The keys that are set."""
        return set(self._data)

    def toMap(self) -> Dict[str, str]:
        """A copy of the settings as a dict."""
        return dict(self._data)

    def getString(self, key: str, default_value: Optional[str] = None) -> Optional[str]:
        """The value of ``key``, or ``default_value``."""
        return self._data.get(key, default_value)

    def getInteger(self, key: str, default_value: int = 0) -> int:
        """``int`` value of ``key``, or ``default_value``."""
        value = self._data.get(key)
        try:
            return int(value) if value is not None else default_value
        except ValueError:
            raise ParameterError(f"configuration {key} must be an integer, got {value!r}") from None

    getLong = getInteger

    def getFloat(self, key: str, default_value: float = 0.0) -> float:
        """``float`` value of ``key``, or ``default_value``."""
        value = self._data.get(key)
        try:
            return float(value) if value is not None else default_value
        except ValueError:
            raise ParameterError(f"configuration {key} must be a number, got {value!r}") from None

    getDouble = getFloat

    def getBoolean(self, key: str, default_value: bool = False) -> bool:
        """True if ``key`` is ``true`` (any case); ``default_value`` if it is not set."""
        value = self._data.get(key)
        return _to_bool(value) if value is not None else default_value

    def setString(self, key: str, value: str) -> None:
        """Sets ``key``."""
        self._data[str(key)] = str(value)

    def setInteger(self, key: str, value: int) -> None:
        """Sets ``key`` to an integer."""
        self._data[str(key)] = str(int(value))

    setLong = setInteger

    def setBoolean(self, key: str, value: bool) -> None:
        """Sets ``key`` to ``true`` or ``false``."""
        self._data[str(key)] = "true" if value else "false"

    # PyFlink's names for the same getters and setters (pyflink.common.Configuration).
    contains_key = containsKey
    key_set = keySet
    to_dict = toMap
    get_string = getString
    get_integer = getInteger
    get_float = getFloat
    get_boolean = getBoolean
    set_string = setString
    set_integer = setInteger
    set_boolean = setBoolean

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __repr__(self) -> str:
        return f"Configuration({self._data!r})"


class Properties(dict):
    """``java.util.Properties``: a dict with ``getProperty``/``setProperty``."""

    def getProperty(self, key: str, default_value: Optional[str] = None) -> Optional[str]:
        """The value of ``key``, or ``default_value``."""
        return self.get(key, default_value)

    def setProperty(self, key: str, value: str) -> None:
        """Sets ``key``."""
        self[key] = value

    def stringPropertyNames(self) -> Iterable[str]:
        """The keys."""
        return set(self)
