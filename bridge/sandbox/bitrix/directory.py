"""A portal's users and workgroups as the REST methods list them: a row from the control API's
few given fields, the rest filled with the portal's defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.sandbox.bitrix.values import as_bool, as_int


def user_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    user_id = as_int(raw.get("ID"))
    if user_id is None:
        raise ValueError("every user needs a numeric ID")
    row: dict[str, Any] = {
        "ID": str(user_id),
        "ACTIVE": True,
        "NAME": "",
        "LAST_NAME": "",
        "SECOND_NAME": "",
        "EMAIL": f"user{user_id}@example.com",
        "LAST_LOGIN": "",
        "DATE_REGISTER": "2024-01-01T00:00:00+00:00",
        "TIME_ZONE": "",
        "IS_ONLINE": "N",
        "PERSONAL_GENDER": "",
        "PERSONAL_BIRTHDAY": "",
        "WORK_POSITION": "",
        "UF_EMPLOYMENT_DATE": "",
        "UF_DEPARTMENT": [1],
        "USER_TYPE": "employee",
    }
    row.update({str(key).upper(): value for key, value in raw.items()})
    row["ID"] = str(user_id)
    row["ACTIVE"] = as_bool(row["ACTIVE"])
    return row


def group_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    group_id = as_int(raw.get("ID"))
    if group_id is None:
        raise ValueError("every group needs a numeric ID")
    row: dict[str, Any] = {
        "ID": str(group_id),
        "NAME": f"Group {group_id}",
        "DESCRIPTION": "",
        "ACTIVE": "Y",
        "VISIBLE": "Y",
        "OPENED": "N",
        "CLOSED": "N",
        "PROJECT": "N",
        "TYPE": "group",
        "OWNER_ID": "1",
        "SUBJECT_ID": "1",
        "SITE_ID": "s1",
        "DATE_CREATE": "2024-01-01T00:00:00+00:00",
        "NUMBER_OF_MEMBERS": "1",
    }
    row.update({str(key).upper(): value for key, value in raw.items()})
    row["ID"] = str(group_id)
    for flag in ("ACTIVE", "VISIBLE", "OPENED", "CLOSED", "PROJECT"):
        if isinstance(row[flag], bool):
            row[flag] = "Y" if row[flag] else "N"
    return row
