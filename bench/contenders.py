"""Run the baselines as child processes on the shared topics and turn their counters into
Results. Each child reports its own first-record time, CPU seconds and peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hito.bench.dataset import Produced, with_bucket
from hito.bench.probe import InfluxTotal
from hito.bench.report import Result
from hito.settings import REPO_ROOT, HitoSettings

BENCH_SETUP = REPO_ROOT / "bench" / "setup.sh"


def bench_python() -> Path:
    """The interpreter of the Quix peer's venv (bench/setup.sh)."""
    if override := os.environ.get("BENCH_VENV"):
        return Path(override) / "bin" / "python"
    cache = Path(os.environ.get("HITO_CACHE_DIR", Path.home() / ".cache" / "hito"))
    return cache / "venv-bench" / "bin" / "python"


def child_env(settings: HitoSettings, pythonpath: Path | None = None) -> dict[str, str]:
    """The environment of a contender: the run's pipeline settings and bucket; ``pythonpath``
    first on the path (the peer's, :func:`peer_pythonpath`)."""
    env = {
        **os.environ,
        "HITO_PIPELINE": settings.pipeline.model_dump_json(),
        "HITO_INFLUXDB__BUCKET": settings.influxdb.bucket,
        "PYTHONWARNINGS": "ignore",
    }
    if pythonpath is not None:
        before = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = f"{pythonpath}{os.pathsep}{before}" if before else str(pythonpath)
    return env


def peer_pythonpath(workdir: Path, package: Path | None = None) -> Path:
    """A directory holding only ``hito``, a link to the package this harness runs (``package``,
    by default the imported one): on the peer venv's path, the peer runs Hito's own stages
    from the same code as the measured workers, without Hito's dependencies (pydantic 2.14
    would break Quix) and whichever clone last set the shared venv up.

    A development install is a tree of links (setuptools' strict editable mode, ``make
    setup``), a wheel install a plain package: both hold ``hito.schemas`` and ``hito.bench``.
    The source tree itself does not (``streams/`` is ``hito``), hence no PYTHONPATH=REPO_ROOT.
    """
    if package is None:
        import hito

        package = Path(hito.__file__).parent
    if not (package / "schemas" / "__init__.py").exists():
        raise RuntimeError(
            f"{package} is not a whole hito package (no schemas/): install hito with "
            "`make setup` (editable, strict mode) or from its wheel"
        )
    path = workdir / "peer-path"
    path.mkdir(parents=True, exist_ok=True)
    link = path / "hito"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(package, target_is_directory=True)
    return path


def _start(
    module: str,
    config: dict[str, Any],
    settings: HitoSettings,
    log: Path,
    python: Path,
    pythonpath: Path | None = None,
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(python), "-m", module, json.dumps(config)],
            env=child_env(settings, pythonpath),
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _finish(proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError(f"{proc.args!r} did not finish in {timeout_s} s; see {log}") from None
    except BaseException:  # the bench itself is stopping (TERM, Ctrl-C): its contender too
        proc.kill()
        proc.wait(timeout=10)
        raise
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{proc.args!r} exited {proc.returncode}:\n{tail}")


def run_ceiling(
    data: HitoSettings, produced: Produced, run: str, workdir: Path, timeout_s: float
) -> Result:
    stats_path = workdir / "ceiling.json"
    config = {
        "expected": produced.total,
        "timeout_s": timeout_s,
        "stats_path": str(stats_path),
    }
    log = workdir / "ceiling.log"
    proc = _start("hito.bench.baselines.ceiling", config, data, log, Path(sys.executable))
    _finish(proc, timeout_s + 60, log)
    s = json.loads(stats_path.read_text())
    return Result(
        name="ceiling",
        events=s["consumed"],
        seconds=s["last_at"] - s["first_at"],
        complete=s["consumed"] == produced.total,
        cpu_s=s["cpu_s"],
        peak_rss_mb=s["peak_rss_mb"],
        details={"bytes": s["bytes"]},
    )


def run_floor(
    kind: str, data: HitoSettings, produced: Produced, run: str, workdir: Path, timeout_s: float
) -> Result:
    """``kind``: ``faust-floor`` (Faust's per-record path) or ``lane-floor`` (Hito's lane)."""
    stats_path = workdir / f"{kind}.json"
    config = {
        "group": f"hito-bench-{run}-{kind}",
        "expected": produced.total,
        "timeout_s": timeout_s,
        "stats_path": str(stats_path),
    }
    log = workdir / f"{kind}.log"
    module = f"hito.bench.baselines.{kind.replace('-', '_')}"
    proc = _start(module, config, data, log, Path(sys.executable))
    _finish(proc, timeout_s + 120, log)
    s = json.loads(stats_path.read_text())
    return Result(
        name=kind,
        events=s["consumed"],
        seconds=s["last_at"] - s["first_at"],
        complete=s["consumed"] >= produced.total,
        cpu_s=s["cpu_s"],
        peak_rss_mb=s["peak_rss_mb"],
        details={"group": config["group"]},
    )


def run_naive(
    data: HitoSettings, produced: Produced, run: str, workdir: Path, max_s: float
) -> Result:
    settings = with_bucket(data, f"hito-bench-{run}-naive")
    token = settings.influxdb.pipeline_token
    assert token is not None
    stats_path = workdir / "naive.json"
    config = {
        "group": f"hito-bench-{run}-naive",
        "expected": produced.total,
        "max_s": max_s,
        "influx_token": token.get_secret_value(),
        "stats_path": str(stats_path),
    }
    log = workdir / "naive.log"
    proc = _start("hito.bench.baselines.naive", config, settings, log, Path(sys.executable))
    _finish(proc, max_s + 120, log)
    s = json.loads(stats_path.read_text())
    probe = InfluxTotal(settings, "events")
    try:
        visible = probe.total()
    finally:
        probe.close()
    return Result(
        name="naive",
        events=s["consumed"],
        seconds=s["last_at"] - s["first_at"],
        complete=not s["timed_out"],
        cpu_s=s["cpu_s"],
        peak_rss_mb=s["peak_rss_mb"],
        points=s["points"],
        details={
            "bucket": settings.influxdb.bucket,
            "rejected": s["rejected"],
            "duplicates": s["duplicates"],
            "points_visible_in_influxdb": visible,
            "time_box_s": max_s,
            "write_batch_points": 1,
        },
    )


def run_quix(
    data: HitoSettings, produced: Produced, run: str, workdir: Path, timeout_s: float
) -> Result:
    python = bench_python()
    if not python.exists():
        raise RuntimeError(f"no Quix Streams venv at {python}: run `bash {BENCH_SETUP}`")
    settings = with_bucket(data, f"hito-bench-{run}-quix")
    token = settings.influxdb.pipeline_token
    assert token is not None
    stats_path = workdir / "quix.json"
    config = {
        "group": f"hito-bench-{run}-quix",
        # Quix names its internal topics "changelog__<group>--…" and "repartition__<group>--…":
        # outside the pipeline user's "hito-" prefix, so the peer logs in as the admin user.
        "kafka_role": "admin",
        "state_dir": str(workdir / "quix-state"),
        "influx_token": token.get_secret_value(),
        "stats_path": str(stats_path),
    }
    log = workdir / "quix.log"
    probe = InfluxTotal(settings, "windows")
    path = peer_pythonpath(workdir)
    proc = _start("hito.bench.baselines.quix_peer", config, settings, log, python, path)
    try:
        done_at = probe.wait_for(produced.valid, timeout_s, lambda: proc.poll() is None)
    except (TimeoutError, RuntimeError) as exc:
        raise RuntimeError(f"Quix peer: {exc}; see {log}") from exc
    finally:
        probe.close()
        if proc.poll() is None:
            proc.terminate()  # Quix stops on SIGTERM and then writes its counters
    _finish(proc, 60, log)
    s = json.loads(stats_path.read_text())
    batches: list[int] = s["batches"]
    return Result(
        name="quix",
        events=s["consumed"],
        seconds=done_at - s["first_at"],
        complete=s["consumed"] == produced.total and s["published"] == produced.valid,
        cpu_s=s["cpu_s"],
        peak_rss_mb=s["peak_rss_mb"],
        points=s["points"],
        details={
            "bucket": settings.influxdb.bucket,
            "rejected": s["rejected"],
            "duplicates": s["duplicates"],
            "published": s["published"],
            "write_batches": len(batches),
            "write_batch_points_mean": round(sum(batches) / len(batches), 1) if batches else 0,
            "write_batch_points_max": max(batches, default=0),
            "kafka_user": "admin",
            "cpu_s_whole_run": s["cpu_s_whole_run"],
        },
    )
