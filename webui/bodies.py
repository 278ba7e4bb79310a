"""Limits on JSON request bodies, checked before anything parses them.

Python's JSON parser recurses once per nesting level, so a body nested 100,000 deep
is a ``RecursionError`` (a 500) wherever a view calls ``request.get_json``. Every
JSON body is therefore measured first, without recursion: more than
:data:`MAX_JSON_BYTES` or deeper than :data:`MAX_JSON_DEPTH` is a 400 naming the
limit, and the view never runs.
"""

from __future__ import annotations

import logging
import re

import numpy as np
from flask import Response, jsonify, request

logger = logging.getLogger(__name__)

#: the largest JSON body a view parses (a layout with the most zones fits many times)
MAX_JSON_BYTES = 4 << 20
#: the deepest nesting of arrays and objects a JSON body may have
MAX_JSON_DEPTH = 32

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in the JSON text ``data``, counted without parsing.

    Brackets inside strings do not count; in text that is not JSON the count is an
    upper bound, which only refuses such text sooner.
    """
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def json_body_error(data: bytes) -> str | None:
    """Why a JSON body is refused before parsing (too large, too deep), or None."""
    if len(data) > MAX_JSON_BYTES:
        return f"the JSON body has {len(data)} bytes; at most {MAX_JSON_BYTES}"
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        return f"the JSON body nests {depth} deep; at most {MAX_JSON_DEPTH}"
    return None


def refuse_unsafe_json() -> tuple[Response, int] | None:
    """A ``before_request`` hook: a 400 for a JSON body over the limits, else None."""
    if not request.is_json:
        return None
    problem = json_body_error(request.get_data(cache=True))
    if problem is None:
        return None
    logger.warning("%s %s refused (400): %s", request.method, request.path, problem)
    return jsonify({"error": problem}), 400
