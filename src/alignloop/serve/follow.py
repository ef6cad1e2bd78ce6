"""Follow an arm's promotions: when `alignloop loop` promotes a version, load it in the
background and swap it in between turns, without a restart (turns under way finish on the
model they started with)."""

from __future__ import annotations

import gc
import logging
import threading

from sqlalchemy.orm import Session

from alignloop.backends import load_backend
from alignloop.serve.state import Services
from alignloop.store.rounds import deployed_version

log = logging.getLogger("alignloop.serve")


class PromotionFollower:
    def __init__(self, services: Services, arm: str, interval: float):
        self.services, self.arm, self.interval = services, arm, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alignloop-follow", daemon=True)

    def start(self) -> PromotionFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        self.services.ready.wait()
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # a bad promotion must not take the server down
                log.exception("could not load the promoted version; still serving the old one")
            self._stop.wait(self.interval)

    def check(self) -> bool:
        """Swap in the arm's promoted version if it is not the one served; True if swapped."""
        with Session(self.services.engine) as session:
            version = deployed_version(session, self.arm)
            if version is None or version.id == self.services.model_version_id:
                return False
            version_id, name, path = version.id, version.name, version.path
        settings = self.services.settings
        log.info("loading promoted version %s from %s", name, path)
        backend = load_backend(path, device=settings.device, max_batch_size=settings.max_batch_size)
        self.services.swap(backend, version_id)
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        log.info("serving promoted version %s", name)
        return True
