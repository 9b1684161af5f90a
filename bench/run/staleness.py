"""Records that answer the same request under an older resolution: ``stale``.

A run id hashes the fully resolved config, so when a default changes (or the config's shape does,
as when DREAM's settings moved from the methods' Params to the sampler's), the same request gets
a new run id and its old records no longer match. They are not lost and not silently "missing":
a record is *stale* for a request when it agrees on what the request names (method and its DREAM
label, dataset, IPC, seed, models, scale, data subset, task) and on every explicit override the
request carries, but its resolved config differs. Records name their own explicit overrides
(``record["request"]``), so one made with other overrides is another request, never stale. Overrides are looked up where the record keeps
them: ``params``, the sampler's / initialiser's / diagnostics' settings, or the protocol; a key an
old record does not hold cannot match, so such requests show as missing, never wrongly as stale.
"""

from __future__ import annotations

import json
from typing import Any

REQUEST_FIELDS = ("method", "label", "dataset", "ipc", "seed", "model", "eval_models", "scale", "data", "task")
GROUP_FIELD = {"sampler": "sampler_config", "init": "initialiser_config", "diagnostics": "diagnostics"}
_MISSING = object()


def request_of(config: dict, ignore_seed: bool = False) -> str:
    """What a stored or resolved config names, as a hashable key (without the seed for a table cell)."""
    values = {k: config.get(k, "distill" if k == "task" else None) for k in REQUEST_FIELDS
              if not (ignore_seed and k == "seed")}
    return json.dumps(values, sort_keys=True, default=str)


def _stored_value(config: dict, key: str) -> Any:
    group, dot, name = key.partition(".")
    if dot:
        return config.get(GROUP_FIELD.get(group, ""), {}).get(name, _MISSING)
    return config.get("params", {}).get(key, _MISSING)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


class StaleIndex:
    """Records by request, to find the stale ones of a resolved run in one lookup."""

    def __init__(self, records: list[dict], ignore_seed: bool = False):
        self.ignore_seed = ignore_seed
        self._by_request: dict[str, list[dict]] = {}
        for rec in records:
            if "config" in rec:
                self._by_request.setdefault(request_of(rec["config"], ignore_seed), []).append(rec)

    def stale_for(self, resolved) -> list[dict]:
        """Records of the same request under another run id (empty when none)."""
        candidates = self._by_request.get(request_of(resolved.as_dict(), self.ignore_seed), [])
        out = []
        for rec in candidates:
            if rec.get("run_id") == resolved.run_id or rec.get("cell_id") == resolved.cell_id:
                continue
            cfg = rec["config"]
            if "request" in rec and not _same(rec["request"], {"params": dict(resolved.config.params),
                                                               "eval": dict(resolved.config.eval)}):
                continue  # made with other explicit overrides: another request, not an older default
            if all(_same(_stored_value(cfg, k), list(v) if isinstance(v, tuple) else v) for k, v in resolved.config.params) \
                    and all(_same(cfg.get("protocol", {}).get(k, _MISSING), v) for k, v in resolved.config.eval):
                out.append(rec)
        return out
