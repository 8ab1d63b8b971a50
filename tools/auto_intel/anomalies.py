"""Anomaly scoring: one streaming detector per watched series, and the findings its scores make.

The detectors live in this process's memory (restored from and snapshotted to the database every
``Detectors.SAVE_EVERY`` points); a point at or above ``ops_anomaly_threshold`` is a finding whose cause
comes from the series' labels (a worker, a pipeline, a partner install, an API route, the queue).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from prometheus_client import Counter
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.ops.repository import SignalRepository
from tools.auto_intel.anomaly_detector import AnomalyDetector, DetectorConfig
from tools.auto_intel.findings import Finding
from tools.auto_intel.signals import parse_series

ANOMALIES = Counter("levqor_ops_anomalies_total", "Anomalous points detected by the monitor", ["signal"])

# Series the detector watches (prefixes); the rest are kept for charts and rules only.
ANOMALY_SERIES: tuple[str, ...] = (
    "jobs.failure_rate", "jobs.failed", "jobs.queue.depth", "jobs.queue.oldest_age_s", "jobs.start_latency_s.p95",
    "api.latency_s.p95", "api.error_rate", "worker.rss_bytes", "partner.error_rate",
)


class Detectors:
    """One H4 :class:`AnomalyDetector` per series, kept in memory and snapshotted to the database."""

    SAVE_EVERY = 12

    def __init__(self) -> None:
        self._dets: dict[str, AnomalyDetector] = {}
        self._points: dict[str, int] = {}
        self.lock = threading.Lock()

    def _get(self, repo: SignalRepository, series: str) -> AnomalyDetector:
        det = self._dets.get(series)
        if det is None:
            row = repo.detector(series)
            if row is not None:
                det = AnomalyDetector.restore(row.state)
                self._points[series] = row.points
            else:
                det = AnomalyDetector(DetectorConfig(warmup=get_settings().ops_detector_warmup))
                self._points[series] = 0
            self._dets[series] = det
        return det

    def score(self, session: Session, ts: dt.datetime,
              points: list[tuple[str, float]]) -> list[tuple[str, float, float | None]]:
        repo = SignalRepository(session)
        out: list[tuple[str, float, float | None]] = []
        with self.lock:
            for series, value in points:
                if not series.startswith(ANOMALY_SERIES):
                    out.append((series, value, None))
                    continue
                det = self._get(repo, series)
                score = float(det.update(value, ts.timestamp()))
                n = self._points[series] = self._points.get(series, 0) + 1
                if n % self.SAVE_EVERY == 1:
                    repo.save_detector(series, det.snapshot(), n)
                out.append((series, value, score))
        return out

    def forget(self) -> None:
        with self.lock:
            self._dets.clear()
            self._points.clear()


detectors = Detectors()


def _cause_of(series: str) -> tuple[str, dict[str, Any]]:
    name, labels = parse_series(series)
    if "worker" in labels:
        return f"worker:{labels['worker']}", {"worker_id": labels["worker"]}
    if "pipeline" in labels:
        return f"pipeline:{labels['pipeline']}", {"pipeline_id": int(labels["pipeline"])}
    if "install" in labels:
        return f"partner:{labels['install']}", {"install_id": int(labels["install"])}
    if "route" in labels:
        return f"api:{labels['route']}", {"route": labels["route"]}
    if name.startswith("jobs.queue") or name.startswith("jobs.start_latency"):
        return "queue", {}
    return name.split(".")[0], {}


def anomaly_findings(scored: list[tuple[str, float, float | None]], ts: dt.datetime) -> list[Finding]:
    """Scored points at or above ``ops_anomaly_threshold``, each a finding for the cause its labels name."""
    threshold = get_settings().ops_anomaly_threshold
    out = []
    for series, value, score in scored:
        if score is None or score < threshold:
            continue
        ANOMALIES.labels(signal=series.split("{")[0]).inc()
        cause, subject = _cause_of(series)
        out.append(Finding(cause=cause, fingerprint=f"anomaly:{series}", kind="anomaly", diagnosis="anomaly",
                           title=f"Unusual {series}: {value:g} (score {score:.2f})",
                           severity="high" if score >= 0.9 else "medium", subject=subject,
                           evidence={"series": series, "value": value, "score": round(score, 4)}, symptom_at=ts))
    return out
