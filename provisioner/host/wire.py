"""JSON for the agent's lines, without importing `json` on the host.

`import json` pulls in `re` and `enum` with it: ~5 ms of a host's CPU on every run, for two
calls per request. CPython's own C accelerator `_json` (what `json` itself uses) does the
whole parse and the whole encoding; this file drives it directly. If `_json` is missing or
does not behave as `json` on a probe value (another Python), it falls back to `json`.

Shipped to every managed host (python3 >= 3.7, standard library only).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Tuple


class _Context:
    """What `_json.make_scanner` reads from a JSONDecoder: json.loads's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


def _fast() -> Tuple[Callable[[str], Any], Callable[[Any], str]]:
    import _json

    scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed: it reads attributes
    # markers (a dict: circular references raise), default, string encoder, indent,
    # key separator, item separator, sort_keys, skipkeys, allow_nan: json.dumps's defaults
    encode_ascii = _json.encode_basestring_ascii

    def loads(text: str) -> Any:
        start = len(text) - len(text.lstrip())
        try:
            value, end = scan(text, start)
        except StopIteration as exc:
            raise ValueError("not JSON at character %s" % exc.value) from None
        if text[end:].strip():
            raise ValueError("extra data after JSON at character %d" % end)
        return value

    def dumps(value: Any) -> str:
        encoder = _json.make_encoder({}, str, encode_ascii, None, ": ", ", ", False, False, True)
        return "".join(encoder(value, 0))

    probe = {"a": [1, 2.5, None, True, "\u00e9\n"], "b": {"c": -3}}
    if loads(dumps(probe)) != probe or dumps(probe) != '{"a": [1, 2.5, null, true, "\\u00e9\\n"], "b": {"c": -3}}':
        raise ImportError("_json behaves differently here")
    return loads, dumps


def _slow() -> Tuple[Callable[[str], Any], Callable[[Any], str]]:
    import json

    def dumps(value: Any) -> str:
        return json.dumps(value, default=str)

    return json.loads, dumps


try:
    loads, dumps = _fast()
except Exception:  # another Python: the json module does the same, a few ms slower
    loads, dumps = _slow()
