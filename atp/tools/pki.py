"""Certificates for `atp up --secure`, `atp compose-secrets` and the TLS tests, made with the
system's `openssl`: a CA, a server certificate for 127.0.0.1, localhost and any further host
names given, a client certificate (mutual TLS), and a second, unrelated CA. They live two days
unless asked otherwise: a local stack's, never a production PKI."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from atp.core.errors import ATPError


class PkiError(ATPError):
    code = "pki"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # trusts nothing of the above
    other_ca_key: Path  # its key: with other_ca, a client certificate no one here trusts


def _openssl(*args: str | Path, cwd: Path) -> None:
    try:
        subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)
    except FileNotFoundError:
        raise PkiError("`openssl` is not installed (Debian: apt-get install openssl)") from None
    except subprocess.CalledProcessError as exc:
        raise PkiError(f"openssl {args[0]} failed: {exc.stderr.decode(errors='replace')}") from None


def _ca(name: str, cn: str, d: Path, days: int) -> None:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days), "-subj", f"/CN={cn}",
        "-keyout", f"{name}.key", "-out", f"{name}.crt",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def _signed(name: str, usage: str, d: Path, days: int, hosts: tuple[str, ...] = ()) -> None:
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", f"{name}.key", "-out", f"{name}.csr",
        cwd=d,
    )  # fmt: skip
    sans = ",".join(["IP:127.0.0.1", *(f"DNS:{h}" for h in ("localhost", *hosts))])
    (d / f"{name}.ext").write_text(
        f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
        f"keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
    )
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", str(days), "-extfile", f"{name}.ext", "-out", f"{name}.crt",
        cwd=d,
    )  # fmt: skip


def make_pki(d: Path, *, days: int = 2, server_names: tuple[str, ...] = ()) -> Pki:
    """The certificates in `d`; `server_names`: host names the server certificate also names
    (a compose stack's service names), besides 127.0.0.1 and localhost."""
    d.mkdir(parents=True, exist_ok=True)
    _ca("ca", "atp test CA", d, days)
    _ca("other-ca", "another CA", d, days)
    _signed("server", "serverAuth", d, days, server_names)
    _signed("client", "clientAuth", d, days)
    return Pki(
        d / "ca.crt",
        d / "server.crt",
        d / "server.key",
        d / "client.crt",
        d / "client.key",
        d / "other-ca.crt",
        d / "other-ca.key",
    )
