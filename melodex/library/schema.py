"""What a store part says about itself: which model made its embeddings, and how they are encoded.

Every part file written by :class:`~melodex.library.store.LibraryStore` carries

* a ``model_fingerprint`` column (string): per row, the fingerprint
  (:func:`melodex.model.checkpoint.model_fingerprint`) of the model that embedded the track;
  null when unknown (a store made before fingerprints, or an inference JSONL indexed without
  ``--model``);
* the Parquet schema metadata key ``melodex.model``: JSON ``{"fingerprint", "name", "labels"}``
  of that model (``name`` is the checkpoint path as it was given), plus ``"params"`` for a
  model that is no checkpoint: ``mfcc-stats`` (:mod:`melodex.library.mfcc_stats`) keeps its
  feature parameters and the scaling fitted on the store's first tracks there;
* the key ``melodex.embedding``: JSON ``{"column": "embedding", "dtype": "float32",
  "byte_order": "little", "dim": 512, "encoding": ...}``, the layout of the embedding column
  (``FixedSizeBinary(4 * dim)``, each row the ``dim`` little-endian float32 values back to back),
  also set as the embedding field's own metadata.

One store holds one model's embeddings: :func:`model_conflict` says why a model may not add to
a store, in one line that names both models and what to do instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

FINGERPRINT_COLUMN = "model_fingerprint"
MODEL_KEY = b"melodex.model"
EMBEDDING_KEY = b"melodex.embedding"


@dataclass(frozen=True)
class ModelStamp:
    """The model that embedded a store's tracks: its fingerprint, a name for people, its labels."""

    fingerprint: str
    name: str = ""
    labels: tuple[str, ...] = ()
    params: dict[str, Any] | None = field(default=None, compare=False, hash=False)  # JSON-able; see above

    def describe(self) -> str:
        return f"model {self.fingerprint}" + (f" ({self.name})" if self.name else "")

    def to_json(self) -> bytes:
        data: dict[str, Any] = {"fingerprint": self.fingerprint, "name": self.name, "labels": list(self.labels)}
        if self.params is not None:
            data["params"] = self.params
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes | None) -> ModelStamp | None:
        if not raw:
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
            params = data.get("params")
            return cls(str(data["fingerprint"]), str(data.get("name") or ""), tuple(data.get("labels") or ()),
                       params if isinstance(params, dict) else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def embedding_encoding(dim: int) -> dict[str, object]:
    """The description of the embedding column stored in every part's schema metadata."""
    return {"column": "embedding", "dtype": "float32", "byte_order": "little", "dim": int(dim),
            "encoding": f"fixed_size_binary[{4 * int(dim)}]: {int(dim)} little-endian float32 per row"}


def stamp_table(table: pa.Table, model: ModelStamp | None, dim: int) -> pa.Table:
    """``table`` (a batch of store rows) with the fingerprint column and the schema metadata added."""

    fingerprint = None if model is None else model.fingerprint
    if FINGERPRINT_COLUMN in table.column_names:
        table = table.drop_columns([FINGERPRINT_COLUMN])
    table = table.append_column(FINGERPRINT_COLUMN, pa.array([fingerprint] * table.num_rows, pa.string()))
    encoding = json.dumps(embedding_encoding(dim)).encode()
    if "embedding" in table.column_names:
        index = table.schema.get_field_index("embedding")
        table = table.set_column(index, table.schema.field(index).with_metadata({EMBEDDING_KEY: encoding}),
                                 table.column(index))
    meta = dict(table.schema.metadata or {})
    meta[EMBEDDING_KEY] = encoding
    if model is not None:
        meta[MODEL_KEY] = model.to_json()
    else:
        meta.pop(MODEL_KEY, None)
    return table.replace_schema_metadata(meta)


def model_conflict(root: object, held: dict[str, ModelStamp], model: ModelStamp | None,
                   what: str = "") -> str | None:
    """Why ``model`` may not add tracks to a store holding ``held`` models (by fingerprint), or None.

    A store that knows no model (new, or made before fingerprints) takes any; one that knows a
    model takes only that model, and never rows of unknown origin (``model`` None)."""

    if not held:
        return None
    if len(held) > 1:
        names = ", ".join(stamp.describe() for stamp in held.values())
        return f"{root}: holds embeddings of several models ({names}); re-embed it with --reembed --model M"
    (stored,) = held.values()
    if model is not None and model.fingerprint == stored.fingerprint:
        return None
    incoming = f"{what or 'these'} embeddings come from an unknown model (give --model, the checkpoint that " \
               "made them)" if model is None else f"--model {model.name} is {model.describe().split(' (')[0]}"
    return (f"{root}: holds embeddings of {stored.describe()}; {incoming}; index into another store "
            f"(--store DIR), or re-embed this one with --reembed")
