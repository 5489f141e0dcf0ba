"""A window of consecutive rows of the engine's preallocated `KVCache`.

The model writes a forward's batch row b into cache row b, so running a batch on rows [start, stop) needs a cache
whose row 0 *is* row `start` of the big one. Slicing the buffers gives views that share memory: writes land in the
big cache, and nothing is copied or allocated per step.
"""

from __future__ import annotations

from r1.model.cache import KVCache


class CacheWindow(KVCache):
    """Rows [start, stop) of `cache`, usable wherever the model takes a `KVCache`."""

    def __init__(self, cache: KVCache, start: int, stop: int) -> None:  # no super(): views, no allocation
        self.cfg, self.max_len, self.mla_impl = cache.cfg, cache.max_len, cache.mla_impl
        self.batch_size = stop - start
        self.buffers = [tuple(b[start:stop] for b in bufs) for bufs in cache.buffers]
        self.mtp_layers = cache.mtp_layers
        self.hidden = [h[start:stop] for h in cache.hidden]
        self.kv_len = 0


class WindowCache:
    """Hands out (and remembers) windows of one cache; decode asks for the same [0, B) window step after step."""

    def __init__(self, cache: KVCache) -> None:
        self.cache = cache
        self._windows: dict[tuple[int, int], CacheWindow] = {}

    def window(self, start: int, stop: int) -> CacheWindow:
        key = (start, stop)
        w = self._windows.get(key)
        if w is None:
            if len(self._windows) > 256:
                self._windows.clear()
            w = self._windows[key] = CacheWindow(self.cache, start, stop)
        return w
