"""The `model:` section of eval and train configs: which builder, with which settings.

    model: {size: tiny, overrides: [lora.enabled=false]}      # a registered builder (tiny | mini | 13b), overrides
    model=@conf/model/13b.yaml                                # a conf/model file: `size` plus ModelConfig fields
    model: {size: 13b, language_model: {path: s3://b/llava}}  # the same, written inline

The builder starts from the defaults of `size` (pixsearch_core/modeling/build.py `DEFAULTS`); the section's
ModelConfig fields (a conf/model file's keys) replace those defaults; `overrides` add dotted settings the fields do
not name. An override of a key the fields already set is an error naming both, never a silent win. Builders get
`build_overrides()`: the fields as dotted overrides, then `overrides`. Everything is checked against ModelConfig
when the config loads (importing the builder, and so torch, only when the section sets anything).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, model_validator

from pixsearch_core.config import Config


def _leaves(tree: dict[str, Any], prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


class ModelSpec(Config):
    size: str = Field("tiny", description="registered model builder: tiny | mini | 13b")
    overrides: list[str] = Field(default_factory=list, description="dotted ModelConfig overrides (key=value)")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="ModelConfig fields over the size's defaults (the keys of a conf/model file land here)",
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_settings(cls, data: Any) -> Any:
        """A conf/model file's ModelConfig keys (dtype, language_model, ...) become `settings`."""
        if isinstance(data, dict):
            loose = {k: v for k, v in data.items() if k not in cls.model_fields}
            if loose:
                data = {
                    **{k: v for k, v in data.items() if k in cls.model_fields},
                    "settings": {**(data.get("settings") or {}), **loose},
                }
        return data

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        keys = [o.partition("=")[0].strip() for o in self.overrides]
        clashes = [
            f"{o} (model.overrides) and {leaf} (the model section / conf/model file)"
            for o in keys
            for leaf, _ in _leaves(self.settings)
            if _overlaps(o, leaf)
        ]
        if clashes:
            raise ValueError("a model setting has two sources: " + "; ".join(clashes) + "; keep one")
        if self.settings or self.overrides:
            from pixsearch_core.modeling.build import model_config

            model_config(self.size, self.build_overrides())  # unknown keys and bad values, all at once
        return self

    def setting_keys(self) -> list[str]:
        """Every dotted key this section sets (fields and overrides)."""
        return [leaf for leaf, _ in _leaves(self.settings)] + [o.partition("=")[0].strip() for o in self.overrides]

    def build_overrides(self) -> list[str]:
        """What the builder gets: the section's fields as dotted overrides, then `overrides`."""
        return [f"{key}={json.dumps(value)}" for key, value in _leaves(self.settings)] + list(self.overrides)
