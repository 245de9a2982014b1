"""[storage]: where attachment bytes and raw mail are kept, in the database or as files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator, model_validator

from mailbridge.config.values import Duration, _Section

Place = Literal["database", "files"]

# The folder under the data directory that holds the files when `dir` is not set.
DEFAULT_BLOB_DIR = "blobs"


class StorageConfig(_Section):
    """Where new attachments and raw mail go. Rows already stored stay where they are until
    `mailbridge storage migrate` moves them; reading finds them in either place."""

    attachments: Place = "database"
    # Left out: as `attachments`. Raw mail holds every attachment again (base64), so
    # attachments as files with raw mail in the database keeps most of the bytes there.
    raw: Place = "database"
    dir: Path | None = None  # None: <data_dir>/blobs
    # `storage check --fix` removes a file no row names only once it is this old: a file
    # is written before the row that names it commits, so a younger one may belong to a
    # transaction still in flight in another instance.
    orphan_grace: Duration = timedelta(hours=1)

    @model_validator(mode="before")
    @classmethod
    def _raw_follows_attachments(cls, data: Any) -> Any:
        if isinstance(data, dict) and "raw" not in data and "attachments" in data:
            return {**data, "raw": data["attachments"]}
        return data

    @field_validator("orphan_grace")
    @classmethod
    def _some_grace(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("a duration of at least 1m")
        return value
