"""The frame reader of the Python client, as wire.c's: it holds the bytes of
at most one split frame, and the limit it is given applies to one frame,
never to the bytes buffered. Also the field types of docs/protocol.md."""
from __future__ import annotations

import math
import struct
from typing import (Any, Dict, Iterable, List, Mapping, Optional, Tuple,
                    Union)

_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """agentsupd sent something this client cannot read."""


class FrameReader:
    """Turns a byte stream into messages (dicts with a string "t")."""

    def __init__(self) -> None:
        self._part = bytearray()  # the split frame, header first

    @property
    def pending(self) -> int:
        """Bytes of a split frame held (nonzero at EOF: cut mid-frame)."""
        return len(self._part)

    def feed(self, data: bytes, max_frame: int) -> List[Dict[str, Any]]:
        """Every whole frame in what was held plus data; keeps the rest.
        ProtocolError on a frame over max_frame (checked on every call) or
        a body that is not one map with a string "t"."""
        if self._part:
            self._part += data
            if len(self._part) >= _HEADER.size:
                (n,) = _HEADER.unpack_from(self._part, 0)
                if n > max_frame:
                    raise ProtocolError(f"frame of {n} bytes is over the limit of {max_frame}")
                if len(self._part) - _HEADER.size < n:
                    return []  # still split: held as it is, not copied again
            buf = memoryview(bytes(self._part))
            self._part = bytearray()
        else:
            buf = memoryview(data)
        msgs = []
        at = 0
        while len(buf) - at >= _HEADER.size:
            (n,) = _HEADER.unpack_from(buf, at)
            if n > max_frame:
                raise ProtocolError(f"frame of {n} bytes is over the limit of {max_frame}")
            if len(buf) - at - _HEADER.size < n:
                break
            body = buf[at + _HEADER.size:at + _HEADER.size + n]
            at += _HEADER.size + n
            msgs.append(_decode(body))
        self._part += buf[at:]
        return msgs


def _decode(body: memoryview) -> Dict[str, Any]:
    import msgpack  # type: ignore[import]

    try:
        # text a worker sent need not be UTF-8 (a C worker's Latin-1
        # status): U+FFFD for what is not, as agentsupctl --json shows it,
        # rather than one worker's bytes making every answer unreadable
        msg: Any = msgpack.unpackb(body, raw=False, strict_map_key=False,
                                   unicode_errors="replace")
    except Exception as e:
        raise ProtocolError(f"bad frame: {e}") from e
    if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
        raise ProtocolError("frame is not a map with a string t")
    return dict(msg)


def _uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _bin(v: Any) -> bool:
    return isinstance(v, bytes)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _cost(v: Any) -> bool:
    return _uint(v) or (isinstance(v, float) and math.isfinite(v) and v >= 0)


def _progress(v: Any) -> bool:
    return isinstance(v, dict) and _check(v, _PROGRESS) is None


_PROGRESS: Dict[str, Tuple[Any, bool]] = {
    "steps": (_uint, False), "tokens": (_uint, False), "cost": (_cost, False),
    "state": (_str, False),
}

# The known fields of the known messages: name -> (type check, required).
FIELDS: Dict[str, Dict[str, Tuple[Any, bool]]] = {
    "hello": {"v": (_uint, True), "pid": (_uint, False), "lang": (_str, False)},
    "welcome": {
        "v": (_uint, False), "name": (_str, False), "path": (_str, False),
        "incarnation": (_uint, False), "heartbeat_ms": (_uint, False),
        "timeout_ms": (_uint, False), "restarts": (_uint, False),
        "last_reason": (_str, False), "checkpoint": (_bin, False),
        "checkpoint_seq": (_uint, False), "max_frame": (_uint, False),
        "checkpoint_max": (_uint, False),
    },
    "hb": {"seq": (_uint, False), "progress": (_progress, False), "status": (_str, False)},
    "drain": {"deadline_ms": (_uint, False)},
    "exit": {"reason": (_str, True), "retry_after_ms": (_uint, False), "detail": (_str, False)},
    "extend": {"ms": (_uint, True)},
    "nudge": {"reason": (_str, True), "idle_ms": (_uint, False), "state": (_str, False),
              "period": (_uint, False)},
    "checkpoint": {"seq": (_uint, True), "data": (_bin, True)},
    "checkpoint_ok": {"seq": (_uint, True)},
    "result": {"data": (lambda v: _bin(v) or _str(v), True)},
    "spawn": {"sup": (_str, True), "key": (_str, False),
              "args": (lambda v: isinstance(v, list) and all(map(_str, v)), False),
              "env": (lambda v: isinstance(v, dict) and all(map(_str, v)) and
                      all(map(_str, v.values())), False)},
    "spawned": {"ok": (_bool, True), "name": (_str, False), "created": (_bool, False),
                "error": (_str, False), "count": (_uint, False)},
}


def _check(msg: Dict[str, Any], fields: Dict[str, Tuple[Any, bool]]) -> Any:
    for name, (ok, required) in fields.items():
        if name not in msg:
            if required:
                return f'"{name}" is required'
            continue
        if not ok(msg[name]):
            return f'"{name}" has the wrong type'
    return None


def _raw(b: Union[str, bytes]) -> str:
    """bytes as the str that packs back to them (surrogateescape)."""
    return b if isinstance(b, str) else b.decode("utf-8", "surrogateescape")


def spawn_args(args: Iterable[Union[str, bytes]]) -> List[str]:
    """A spawn's arguments as sent: str, or bytes (bytes that are not UTF-8
    reach the task as they are, as from agentsupctl, whatever the locale:
    packed with surrogateescape, as _raw decodes them); a
    single str would be split into its characters, anything else is a
    mistake (str(b"x") was "b'x'")."""
    if isinstance(args, (str, bytes)):
        raise TypeError("args must be a list of str, not one "
                        f"{type(args).__name__}: args=[...]")
    out = []
    for a in args:
        if not isinstance(a, (str, bytes)):
            raise TypeError(f"args: each must be a str or bytes, not "
                            f"{type(a).__name__} ({a!r})")
        out.append(_raw(a))
    return out


def spawn_env(env: Optional[Mapping[Any, Any]]) -> Dict[str, str]:
    """A spawn's environment: names and values str or bytes; a name that
    is empty or holds "=" or NUL sets some other variable, and is
    refused (ValueError)."""
    out = {}
    for k, v in (env or {}).items():
        if not isinstance(k, (str, bytes)) or not isinstance(v, (str, bytes)):
            raise TypeError(f"env: names and values must be str or bytes, "
                            f"not {type(k).__name__}: {type(v).__name__}")
        name = _raw(k)
        if not name or "=" in name or "\0" in name:
            raise ValueError(f"env: {name!r} is not a variable's name")
        out[name] = _raw(v)
    return out


def field_error(msg: Dict[str, Any]) -> Optional[str]:
    """Why a known field of a known message has the wrong type, or None
    (unknown keys and types pass): the daemon's table, wire_fields.c."""
    fields = FIELDS.get(msg["t"])
    why = _check(msg, fields) if fields else None
    return f'{msg["t"]}: {why}' if why else None


def check_fields(msg: Dict[str, Any]) -> None:
    """ProtocolError when a known field of a known message has the wrong
    type (unknown keys and types pass)."""
    why = field_error(msg)
    if why:
        raise ProtocolError(why)
