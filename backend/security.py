"""CurveZMQ keys and the bind policy: anything reachable from another machine is encrypted and
authenticated unless the operator explicitly says --insecure.

Keys are pyzmq's certificate files: NAME.key (public, safe to copy) and NAME.key_secret (keep private).
The server accepts exactly the clients whose public .key files are in its client-keys folder.
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from backend.protocol import CurveClientKeys


class SecurityError(ValueError):
    """A bind or key setup that would be unsafe or cannot work; the message says what to do."""


def is_local(endpoint: str) -> bool:
    """True for endpoints no other machine can reach: tcp on a loopback address, ipc, inproc."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    match = re.fullmatch(r"tcp://(\[[^\]]+\]|[^:]+):(\d+|\*)", endpoint)
    if not match:
        return False
    host = match.group(1).strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', 0.0.0.0-style wildcards and interface names reach the network


def check_bind(endpoint: str, secured: bool, insecure: bool) -> None:
    if is_local(endpoint) or secured or insecure:
        return
    raise SecurityError(
        f"refusing to bind {endpoint} without encryption: other machines could reach it, and anyone who can "
        "connect can run the model. Make keys with `irg-motion keys DIR`, then pass --server-key "
        "DIR/server.key_secret --client-keys FOLDER_OF_CLIENT_.key_FILES, or bind tcp://127.0.0.1:PORT, "
        "or pass --insecure on a trusted network.")


def make_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key and NAME.key_secret into `directory`; refuse to overwrite an existing pair."""
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise SecurityError(f"{path} already exists; pick another --name or folder")
    directory.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(directory, name)
    Path(secret_file).chmod(0o600)
    return Path(public_file), Path(secret_file)


def _load(path: Path, need_secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise SecurityError(f"{path}: no such key file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (ValueError, OSError) as exc:
        raise SecurityError(f"{path}: not a CurveZMQ key file ({exc})") from None
    if need_secret and not secret:
        raise SecurityError(f"{path} holds only a public key; pass the NAME.key_secret file")
    return public, secret


class CurveServer:
    """Server keys plus the authenticator that lets in only the listed client keys."""

    def __init__(self, secret_file: Path, client_keys: Path):
        self.public, self.secret = _load(secret_file, need_secret=True)
        if not client_keys.is_dir() or not any(client_keys.glob("*.key")):
            raise SecurityError(f"{client_keys}: need a folder holding the clients' public NAME.key files")
        self.client_keys = client_keys
        self._auth: ThreadAuthenticator | None = None

    def apply(self, context: zmq.Context, sock: zmq.Socket) -> None:
        self._auth = ThreadAuthenticator(context)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(self.client_keys))
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()


def client_keys(secret_file: Path, server_public_file: Path) -> CurveClientKeys:
    public, secret = _load(secret_file, need_secret=True)
    server_public, _ = _load(server_public_file, need_secret=False)
    return CurveClientKeys(public=public, secret=secret, server_public=server_public)
