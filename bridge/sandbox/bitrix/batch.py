"""The `batch` method of the Bitrix24 emulator: up to 50 commands with `$result[...]` references.

Commands run in order; each sees the results of the ones before it through `$result`,
`$result_error`, `$result_total`, `$result_next` and `$result_time`. Faults aimed at a method
hit its sub-commands too.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from bridge.sandbox.bitrix.budget import OVER_BUDGET, WEBHOOK
from bridge.sandbox.bitrix.events import run_method
from bridge.sandbox.bitrix.php_query import parse_php_query, php_string
from bridge.sandbox.bitrix.rest import Call, Outcome, RestError, time_block
from bridge.sandbox.bitrix.state import State
from bridge.sandbox.bitrix.values import as_bool, as_text, method_name, php_text

BATCH_MAX_LENGTH = 50
_BATCH_MAPS = ("result", "result_error", "result_total", "result_next", "result_time")
_REF = re.compile(
    r"\$(result|result_error|result_total|result_next|result_time)\[([^\]]*)\]"
    r"((?:\[[^\]]*\])*)"
)


async def run_batch(state: State, call: Call, entry: dict[str, Any], started: float) -> Any:
    halt = as_bool(call.params.get("halt"))
    maps: dict[str, dict[str, Any]] = {name: {} for name in _BATCH_MAPS}
    log: list[dict[str, Any]] = []
    for index, (key, raw) in enumerate(_batch_commands(call.params.get("cmd"))):
        began = time.time()
        method, params = "", dict[str, Any]()
        try:
            if index >= BATCH_MAX_LENGTH:
                raise RestError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
            method, params = _parse_command(raw, maps)
            outcome = await _run_command(state, call, method, params)
        except RestError as exc:
            maps["result_error"][key] = exc.body()
            log.append(
                {
                    "key": key,
                    "method": method,
                    "params": params,
                    "status": exc.status,
                    "error": exc.code,
                }
            )
            if halt:
                break
            continue
        maps["result"][key] = outcome.result
        if outcome.total is not None:
            maps["result_total"][key] = outcome.total
        if outcome.next is not None:
            maps["result_next"][key] = outcome.next
        finished = time.time()
        with state.lock:  # each nested call counts against its own method (limits.md)
            spent = call.portal.budget.spend(call.client_id or WEBHOOK, method, began, finished)
        maps["result_time"][key] = time_block(began, finished, spent)
        log.append({"key": key, "method": method, "params": params, "status": 200, "error": None})
    entry["commands"] = log
    return {
        "result": {name: _php_array(values) for name, values in maps.items()},
        "time": time_block(started, time.time()),
    }


async def _run_command(state: State, call: Call, method: str, params: dict[str, Any]) -> Outcome:
    if method == "batch":
        raise RestError(
            405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
        )
    with state.lock:
        fault = state.take_fault(call.portal.member_id, method)
    if fault is not None:
        if fault.kind != "delay":  # html and drop cannot hit one sub-command: report an error
            raise RestError(fault.status, fault.error, fault.description)
        await asyncio.sleep(fault.seconds)
    with state.lock:
        if call.portal.budget.exhausted(call.client_id or WEBHOOK, method, time.time()):
            raise RestError(*OVER_BUDGET)
        return run_method(method, replace(call, params=params))


def _batch_commands(cmd: Any) -> list[tuple[str, Any]]:
    if isinstance(cmd, Mapping):
        return [(str(key), value) for key, value in cmd.items()]
    if isinstance(cmd, list):
        return [(str(index), value) for index, value in enumerate(cmd)]
    return []


def _parse_command(raw: Any, refs: Mapping[str, Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    if isinstance(raw, Mapping) and "method" in raw:
        method = as_text(raw["method"])
        given = raw.get("params")
        params = dict(given) if isinstance(given, Mapping) else {}
    else:
        method, _, query = php_string(raw).partition("?")
        params = parse_php_query(parse_qsl(query, keep_blank_values=True))
    substituted = _substitute(params, refs)
    return method_name(method), substituted if isinstance(substituted, dict) else {}


def _substitute(value: Any, refs: Mapping[str, Mapping[str, Any]]) -> Any:
    if isinstance(value, dict):
        return {key: _substitute(child, refs) for key, child in value.items()}
    if isinstance(value, list):
        return [_substitute(child, refs) for child in value]
    if not isinstance(value, str) or "$result" not in value:
        return value
    whole = _REF.fullmatch(value)
    if whole is not None:
        resolved = _resolve(whole, refs)
        return "" if resolved is None else resolved
    return _REF.sub(lambda match: php_text(_resolve(match, refs)), value)


def _resolve(match: re.Match[str], refs: Mapping[str, Mapping[str, Any]]) -> Any:
    node: Any = refs[match.group(1)].get(match.group(2))
    for segment in re.findall(r"\[([^\]]*)\]", match.group(3)):
        if isinstance(node, Mapping):
            node = node.get(segment)
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return None
    return node


def _php_array(values: dict[str, Any]) -> Any:
    """How PHP's json_encode shows an array: `[]` when empty, a list when keyed 0..n-1."""
    if list(values) == [str(index) for index in range(len(values))]:
        return list(values.values())
    return values
