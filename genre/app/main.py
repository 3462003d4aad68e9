"""What ``genre-app`` does: check the settings, load the run once, then serve the page until Ctrl-C."""
from __future__ import annotations

import ipaddress
import logging
import socket

from omegaconf import DictConfig

from genre.runtime.errors import ConfigError

log = logging.getLogger(__name__)
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port(host: str, port) -> None:
    """Refuse a port that is not one, or that something already listens on, before the model is loaded."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigError(f"port={port!r}: a TCP port number, 1-65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        try:
            probe.bind((host, port))
        except socket.gaierror:
            raise ConfigError(f"host={host}: not an address of this machine (127.0.0.1 by default)") from None
        except OSError as error:
            raise ConfigError(f"port={port} on {host} cannot be used ({error.strerror}): something else listens "
                              f"there (another app?); choose another with port=...") from None


def reach_line(host: str, port: int) -> str:
    """Who can reach the app, said when another host than this machine's loopback was asked for."""
    try:
        addresses = sorted(set(socket.gethostbyname_ex(socket.gethostname())[2]) - {"127.0.0.1"})
    except OSError:
        addresses = []
    where = f" (this machine: {', '.join(f'http://{a}:{port}' for a in addresses)})" if addresses else ""
    return (f"host={host}: every machine that can reach this one on port {port} can use the app{where}. It has no "
            f"login: anyone there can classify files and play the run's corpus. host=127.0.0.1 keeps it to this machine.")


def serve(cfg: DictConfig) -> None:
    """Load the run named by ``cfg`` (``conf/app.yaml``) and serve the app on ``cfg.host:cfg.port``."""
    from genre.app.service import Limits

    if not isinstance(cfg.similar, int) or cfg.similar < 0:
        raise ConfigError(f"similar={cfg.similar!r}: an integer >= 0 (tracks like the song to list)")
    limits = Limits(float(cfg.max_upload_mb), float(cfg.max_seconds), int(cfg.workers), int(cfg.queue),
                    float(cfg.min_audio_seconds))
    host = str(cfg.host)
    check_port(host, cfg.port)
    from genre.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(cfg.tracking_uri, cfg.paths.root_dir)
    from genre.app.service import AppModel, resolve_checkpoint

    ckpt_path, named = resolve_checkpoint(cfg.ckpt_path, cfg.run_id, cfg.registered_model, cfg.alias, uri,
                                         cfg.paths.cache_dir)
    log.info("loading %s (%s)", named, ckpt_path)
    service = AppModel(ckpt_path, cfg.similar, cfg.paths.cache_dir, cfg.dataset_root, uri, cfg.mlflow_ui, named)
    import uvicorn

    from genre.app.server import create_app

    app = create_app(service, limits, host)
    shown = f"[{host}]" if ":" in host else host
    if not is_loopback(host):
        log.warning(reach_line(host, cfg.port))
    log.info("the genre app serves %s: http://%s:%d (Ctrl-C stops it)", named, shown, cfg.port)
    uvicorn.run(app, **server_settings(host, cfg.port, int(cfg.workers) + int(cfg.queue)))


def server_settings(host: str, port: int, requests: int) -> dict:
    """uvicorn's settings for the app: a request's headers within 10 s (:func:`request_deadline_protocol`) and
    16 kB, idle connections closed after 5 s, and at most ``requests`` + 16 connections at once (503 beyond)."""
    from genre.app.server import request_deadline_protocol

    return {"host": host, "port": port, "log_level": "warning", "http": request_deadline_protocol(10.0),
            "timeout_keep_alive": 5, "limit_concurrency": requests + 16, "h11_max_incomplete_event_size": 16 * 1024,
            "server_header": False}
