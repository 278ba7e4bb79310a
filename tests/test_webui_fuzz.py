"""Every route, every parameter, as every role that can reach it: hostile values, no 500.

Routes come from ``app.url_map``, so a new route is fuzzed as soon as it exists. The
parameters come from the views themselves: the app's request class records every
query, form, file and JSON key a view reads, and each request is repeated with the
values that open further branches (``window=custom`` reads ``from`` and ``to``) until
no new key turns up. Each key is then sent every hostile value of its kind (dates in
year 1 and 9999, huge and negative numbers, NaN, inf, 10 kB strings, unicode,
``../`` paths, JSON nested 100,000 deep, wrong types, hostile images), alone and all
at once. No answer may be a 5xx, no view may raise, and nothing may be logged at
ERROR (a traceback is logged there). A 503 is a refusal by design (``/healthz`` of a
degraded box, a plan upload while another decodes).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask, Request
from flask.json.provider import DefaultJSONProvider
from flask.testing import FlaskClient
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.test import TestResponse

from appliance.box.health import Health
from appliance.config import load_config
from tests.test_plan_upload import HOSTILE as HOSTILE_IMAGES
from tests.test_plan_upload import jpeg_bytes, zero_png
from tests.webui_support import PASSWORD, csrf_token, make_app, raise_alert, sign_in, store_copy
from webui import create_app
from webui.bodies import MAX_JSON_BYTES, MAX_JSON_DEPTH
from webui.ops import ops_blueprint

#: every text a query string or form field is sent
HOSTILE_TEXT = [
    "",
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00",
    "9999-12-31T23:59",
    "2024-02-30",
    "2024-13-01T25:61",
    "-1",
    "0",
    "99999999999999999999999",
    "9" * 5000,  # past Python's int-from-text digit limit
    "1e308",
    "NaN",
    "inf",
    "0x1F",
    "null",
    "[]",
    "x" * 10_000,
    "é中文🙂\u202e\ufeff",
    "\x00\x1b[31m\r\n",
    "../../../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR '1'='1' --",
]
#: values that open a view's branches, so that the keys read there are found (a valid
#: date lets the view read on to the next key)
OPENERS = ["custom", "change", "delete", "2024-06-01"]
JSON_OPENERS: list[list[Any]] = [[{}], []]


def _deep(n: int) -> Any:
    value: Any = 0
    for _ in range(n):
        value = [value]
    return value


#: every value a JSON key is sent (NaN and inf go out as Python's json writes them)
HOSTILE_JSON: list[Any] = [
    None,
    True,
    0,
    -1,
    10**30,
    1e308,
    float("nan"),
    float("-inf"),
    "",
    "x" * 10_000,
    "é🙂",
    "../../etc/passwd",
    [],
    {},
    [None],
    [[]],
    [1e308, -1e308],
    [float("nan"), 1],
    [[1, 2], [3, 4], [5, 6]],
    {"a": [1, 2]},
    _deep(MAX_JSON_DEPTH - 8),
]
#: whole JSON bodies
HOSTILE_BODIES: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b'"x"',
    b"{",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"\xff\xfe\x00",
    b'{"zones": 1e999, "lines": -1e999, "pairs": NaN}',
    b"[" + b"1," * (MAX_JSON_BYTES // 2) + b"1]",
]
_PNG = zero_png(60, 40)
#: every file a file field is sent: (bytes, file name)
HOSTILE_FILES: list[tuple[bytes, str]] = [
    (b"", "empty.png"),
    (b"plain text\n", "notes.png"),
    (_PNG[:60], "cut.png"),
    *((data, f"{name}.png") for name, (data, _) in HOSTILE_IMAGES.items()),
    (jpeg_bytes() + b"PK\x03\x04" + bytes(100), "tail.jpg"),
    (_PNG, "../../../etc/passwd.png"),
    (_PNG, "x" * 5000 + ".png"),
    (_PNG, "é中文🙂\x00.png"),
]
#: a sample value of each path converter's argument, by argument name
SAMPLES = {"table": "agg_footfall", "alert_id": "1", "filename": "app.css", "camera_id": "west"}
#: hostile values of an ``int`` path argument (anything else is not that route)
HOSTILE_INTS = ["0", "99999999999999999999999", "9" * 5000]

ROLES = ("first boot", "anonymous", "manager", "installer", "staff")


@dataclass
class Seen:
    """Which (where, key) the views read during the current request."""

    keys: set[tuple[str, str]] = field(default_factory=set)


SEEN = Seen()


class _SeenArgs(ImmutableMultiDict[str, Any]):
    """A query string or form that notes every key a view asks for."""

    where = "args"

    def __getitem__(self, key: str) -> Any:
        SEEN.keys.add((self.where, key))
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:  # type: ignore[override]
        SEEN.keys.add((self.where, key))
        return super().get(key, default, type)

    def getlist(self, key: str, type: Any = None) -> list[Any]:
        SEEN.keys.add((self.where, key))
        return super().getlist(key, type)

    def __contains__(self, key: object) -> bool:
        SEEN.keys.add((self.where, str(key)))
        return super().__contains__(key)

    def to_dict(self) -> Any:  # type: ignore[override]  # the views ask for the flat dict
        where = self.where

        class _SeenDict(dict[str, Any]):
            def get(self, key: str, default: Any = None) -> Any:
                SEEN.keys.add((where, key))
                return super().get(key, default)

            def __getitem__(self, key: str) -> Any:
                SEEN.keys.add((where, key))
                return super().__getitem__(key)

        return _SeenDict(super().to_dict())


class _SeenForm(_SeenArgs):
    where = "form"


class _SeenFiles(_SeenArgs):
    where = "files"


class _SeenObject(dict[str, Any]):
    """A JSON object that notes each key read from it, by its path in the body."""

    path = ""

    def get(self, key: str, default: Any = None) -> Any:
        SEEN.keys.add(("json", f"{self.path}{key}"))
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        SEEN.keys.add(("json", f"{self.path}{key}"))
        return super().__getitem__(key)


def _mark_paths(value: Any, path: str = "") -> None:
    if isinstance(value, _SeenObject):
        value.path = path
        for key, item in value.items():
            _mark_paths(item, f"{path}{key}.")
    elif isinstance(value, list) and value:
        _mark_paths(value[0], f"{path}0.")


class _SeenJSON(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        body = json.loads(s, object_hook=_SeenObject, **kwargs)
        _mark_paths(body)
        return body


class _SeenRequest(Request):
    @cached_property
    def args(self) -> ImmutableMultiDict[str, str]:
        return _SeenArgs(super().args)

    def _load_form_data(self) -> None:
        super()._load_form_data()
        self.__dict__["form"] = _SeenForm(self.__dict__["form"])
        self.__dict__["files"] = _SeenFiles(self.__dict__["files"])


def fuzz_app(tmp_path: Path, role: str) -> Flask:
    """The box's dashboard (ops endpoints, an alert raised) on a config copy, recording keys."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = store_copy(tmp_path)
    config = load_config(config_path)
    blueprints = [ops_blueprint(Health(config, tmp_path / "box.db"))]
    if role == "first boot":  # no account yet: the setup page is open
        app = create_app(config_path, tmp_path / "box.db", testing=True, blueprints=blueprints)
    else:
        app = make_app(tmp_path, config_path, blueprints=blueprints)
        raise_alert(tmp_path / "box.db", config)
    app.request_class = _SeenRequest
    app.json = _SeenJSON(app)
    return app


def _set_path(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with ``value`` at the dotted ``path`` (``pairs.0.image``)."""
    out: dict[str, Any] = json.loads(json.dumps(body))
    node: Any = out
    *steps, last = path.split(".")
    for step in steps:
        node = node[int(step)] if isinstance(node, list) else node[step]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


@dataclass(frozen=True)
class Sent:
    """One request: how it was sent, and what came back (or what it raised)."""

    label: str
    status: int
    raised: str = ""


class Fuzzer:
    """Sends requests as one signed-in client and keeps every failure."""

    def __init__(self, app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture):
        self.app, self.client, self.caplog = app, client, caplog
        self.failures: list[Sent] = []
        self.sent = 0
        self.config_path: Path = app.extensions["footfall"].config_path
        self.config_text = self.config_path.read_bytes()
        self.first_boot = app.test_client().get("/login").status_code != 200
        self._token: str | None = None

    def token(self) -> str:
        """The client's CSRF token (valid for as long as its session)."""
        if self._token is None:
            self._token = csrf_token(self.client, "/setup" if self.first_boot else "/login")
        return self._token

    def send(self, method: str, url: str, label: str, **kwargs: Any) -> TestResponse | None:
        self.sent += 1
        SEEN.keys.clear()
        self.caplog.clear()
        try:
            response = self.client.open(url, method=method, **kwargs)
        except Exception as exc:  # a view raised: the server would answer 500
            self.failures.append(Sent(label, 500, f"{type(exc).__name__}: {exc}"[:300]))
            return None
        finally:
            self._restore_config()
        logged = [r for r in self.caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        body = response.get_data()
        failed = response.status_code >= 500 and response.status_code != 503  # 503: by design
        if failed or logged or b"Traceback" in body:
            raised = "; ".join(r.getMessage()[:200] for r in logged)
            self.failures.append(Sent(label, response.status_code, raised))
        return response

    def _restore_config(self) -> None:
        """Undo a save, so that each request meets the same store."""
        if self.config_path.read_bytes() != self.config_text:
            self.config_path.write_bytes(self.config_text)
            self.app.extensions["footfall"].reload()


def _kwargs(method: str, where: str, params: dict[str, Any], token: str) -> dict[str, Any]:
    if where == "json":
        data = json.dumps(params).encode()
        return {"data": data, "content_type": "application/json", "headers": {"X-CSRFToken": token}}
    if method == "GET":
        return {"query_string": params}
    return {"data": {**params, "csrf_token": token}}


def _reachable(response: TestResponse | None) -> bool:
    if response is None:
        return True
    redirect = response.headers.get("Location", "")
    return response.status_code != 403 and not (
        response.status_code == 302 and redirect.startswith("/login")
    )


def discover(f: Fuzzer, method: str, url: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every (where, key) the view reads, each with the parameters under which it is read."""
    wheres = ["args"] if method == "GET" else ["form", "json"]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    frontier: list[tuple[str, dict[str, Any]]] = [(w, {}) for w in wheres]
    while frontier:
        where, base = frontier.pop()
        token = f.token()
        f.send(
            method, url, f"discover {method} {url} {base}", **_kwargs(method, where, base, token)
        )
        for seen_where, key in SEEN.keys - found.keys():
            found[seen_where, key] = base
            if seen_where == "json":
                frontier += [(where, _set_path(base, key, o)) for o in JSON_OPENERS]
            elif seen_where != "files":
                frontier += [(where, {**base, key: opener}) for opener in OPENERS]
    return found


_ARGUMENT = re.compile(r"<(?:(\w+):)?(\w+)>")


def _urls(rule: Any) -> Iterator[tuple[str, str]]:
    """(url, label): the rule with sample arguments, then each argument hostile."""

    def build(**values: str) -> str:
        return _ARGUMENT.sub(lambda m: quote(values[m.group(2)], safe=""), rule.rule)

    args = {name: SAMPLES[name] for name in rule.arguments}
    yield build(**args), "sample"
    for kind, name in _ARGUMENT.findall(rule.rule):
        for value in HOSTILE_INTS if kind == "int" else HOSTILE_TEXT:
            if value.strip():
                yield build(**{**args, name: value}), f"{name}={value[:40]!r}"


def fuzz_route(f: Fuzzer, rule: Any, method: str, *, alone: bool) -> set[tuple[str, str]]:
    """Fuzz one route and method; the (where, key) it reads (none: this role cannot reach it).

    With ``alone``, every key gets every hostile value of its kind by itself; always,
    every key of a kind gets each hostile value at once, and the whole body is hostile.
    """
    urls = list(_urls(rule))
    url = urls[0][0]
    form = "form" if method == "POST" else "args"
    plain = f.send(method, url, f"{method} {url}", **_kwargs(method, form, {}, f.token()))
    if not _reachable(plain):
        return set()
    for other, label in urls[1:]:
        f.send(method, other, f"{method} {label}", **_kwargs(method, form, {}, f.token()))
    found = discover(f, method, url)
    for (where, key), base in sorted(found.items()) if alone else ():
        label = f"{method} {url} {where} {key}"
        if where == "json":
            for value in HOSTILE_JSON:
                params = _set_path(base, key, value)
                f.send(method, url, f"{label}={value!r:.60}", **_kwargs(
                    method, "json", params, f.token()))  # fmt: skip
        elif where == "files":
            for data, name in HOSTILE_FILES:
                files = {**base, key: (io.BytesIO(data), name), "csrf_token": f.token()}
                f.send(method, url, f"{label} named {name[:40]!r}", data=files)
        else:
            for value in HOSTILE_TEXT:
                params = {**base, key: value}
                f.send(method, url, f"{label}={value[:40]!r}", **_kwargs(
                    method, where, params, f.token()))  # fmt: skip
    if method == "POST":
        for body in HOSTILE_BODIES:
            f.send(method, url, f"POST {url} body {body[:40]!r}", data=body,
                   content_type="application/json", headers={"X-CSRFToken": f.token()})  # fmt: skip
    for where in {w for w, _ in found} - {"json", "files"}:
        keys = [k for w, k in found if w == where]
        for value in HOSTILE_TEXT:  # every parameter hostile at once
            f.send(method, url, f"{method} {url} every {where}={value[:40]!r}", **_kwargs(
                method, where, dict.fromkeys(keys, value), f.token()))  # fmt: skip
    return set(found)


def _order(app: Flask) -> list[tuple[Any, str]]:
    """Every (rule, method); signing in and out last, so that the client stays who it is."""
    pairs = [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})  # type: ignore[operator]
    ]
    last = {"/logout": 2, "/login": 1}
    return sorted(pairs, key=lambda p: (last.get(p[0].rule, 0), p[0].rule, p[1]))


#: 500s the fuzz finds in code other branches of issue #11 own: (label prefix, owner)
def test_no_route_answers_hostile_input_with_a_500(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    report: list[str] = []
    read: dict[str, dict[str, set[tuple[str, str]]]] = {}
    for role in ROLES:
        app = fuzz_app(tmp_path / role.replace(" ", "-"), role)
        client = app.test_client()
        if role not in ("first boot", "anonymous"):
            assert sign_in(client, role, PASSWORD) == 302
        f = Fuzzer(app, client, caplog)
        done = {route for seen in read.values() for route, keys in seen.items() if keys}
        read[role] = {
            f"{rule.rule} {method}": fuzz_route(
                f, rule, method, alone=f"{rule.rule} {method}" not in done
            )
            for rule, method in _order(app)
        }
        report += [f"{role}: {s.status} {s.label} {s.raised}" for s in f.failures]
        assert f.sent > 100, role
    assert not report, "\n".join([f"{len(report)} requests failed:", *report[:40]])
    # the discovery found what each page reads, for each role that can open it
    for role in ("staff", "manager", "installer"):
        trends = {("args", "window"), ("args", "from"), ("args", "to"), ("args", "date")}
        assert trends <= read[role]["/trends GET"]
        assert {("args", "change"), ("args", "days"), ("args", "a_from")} <= read[role][
            "/compare GET"
        ]
    assert {"period", "k", "to"} <= {k for _, k in read["manager"]["/export/<table>.csv GET"]}
    assert not read["staff"]["/export/<table>.csv GET"]  # staff cannot export: not fuzzed
    assert ("files", "image") in read["installer"]["/installer/plan/image POST"]
    assert ("json", "pairs.0.image") in read["installer"][
        "/installer/cameras/<camera_id>/calibration/check POST"
    ]
    assert {"token", "username", "password"} <= {k for _, k in read["first boot"]["/setup POST"]}


def test_json_bodies_too_deep_or_too_large_are_a_400(tmp_path: Path) -> None:
    app = fuzz_app(tmp_path, "installer")
    client = app.test_client()
    assert sign_in(client, "installer") == 302
    token = csrf_token(client, "/installer/")
    json_routes = [
        rule.rule.replace("<camera_id>", "west")
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/installer") and "POST" in (rule.methods or ())
    ]
    for url in json_routes:
        for body, reason in [
            (b"[" * 100_000 + b"]" * 100_000, f"nests 100000 deep; at most {MAX_JSON_DEPTH}"),
            (
                b'{"pairs": ' + b"[" * 40 + b"]" * 40 + b"}",
                f"nests 41 deep; at most {MAX_JSON_DEPTH}",
            ),
            (b" " * (MAX_JSON_BYTES + 1) + b"{}", f"at most {MAX_JSON_BYTES}"),
        ]:
            response = client.post(
                url, data=body, content_type="application/json", headers={"X-CSRFToken": token}
            )
            assert response.status_code == 400, url
            assert reason in response.get_json()["error"], url
    ok = client.post(
        "/installer/cameras/west/calibration/check",
        json={"pairs": [{"image": [0, 0], "floor": [0, 0]}]},
        headers={"X-CSRFToken": token},
    )
    assert ok.status_code == 400 and "nests" not in ok.get_json()["error"]  # the view answered
