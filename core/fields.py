"""Field types shared by the configuration models of several components."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator


def _iana_timezone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {v!r} (use an IANA name such as Asia/Shanghai)") from None
    return v


#: an IANA time zone name, checked where the file is loaded
Timezone = Annotated[str, AfterValidator(_iana_timezone)]
