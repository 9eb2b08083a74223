"""The typed readers settings.py reads the environment through, and the checks of what they
read (`ImproperlyConfigured` naming the variable on a bad value).

Each `env_*` reads one variable, or its `NAME_FILE` for a secret, and records its names in
`PORTAL_VARIABLES`. Nothing here writes: the TLS pair is only read and loaded into an SSL
context to check that the key is the certificate's.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

# Every variable settings read (filled as they read them): the portal's own, which no
# environment's password_env may name (runs/environments.py).
PORTAL_VARIABLES: set[str] = set()


def env_str(name: str, default: str = "") -> str:
    """A value from NAME, or from the file named by NAME_FILE (for secrets)."""
    PORTAL_VARIABLES.update({name, f"{name}_FILE"})
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r}: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    value = env_str(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}")
    return number


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_networks(name: str, default: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated addresses or CIDR networks."""
    try:
        return [ipaddress.ip_network(item, strict=False) for item in env_list(name, default)]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def env_artifact_storage(name: str) -> dict[str, Any]:
    """The STORAGES entry NAME selects: `database` (the default) or `s3://bucket/prefix`
    (django-storages, with the usual AWS variables and AWS_S3_ENDPOINT_URL)."""
    value = env_str(name, "").strip() or "database"
    if value == "database":
        return {"BACKEND": "runs.storage.DatabaseStorage"}
    parts = urlsplit(value)
    if parts.scheme != "s3":
        raise ImproperlyConfigured(f"{name}={value!r}: use database or s3://bucket/prefix")
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket) or parts.query or parts.fragment or "//" in prefix:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not s3://bucket/prefix (a bucket name: 3-63 lowercase letters, digits, dots, hyphens)"
        )
    endpoint = env_str("AWS_S3_ENDPOINT_URL").strip()
    if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ImproperlyConfigured(f"AWS_S3_ENDPOINT_URL={endpoint!r} is not an http(s) URL")
    options = {
        "bucket_name": bucket,
        "location": prefix,
        "endpoint_url": endpoint or None,
        "region_name": env_str("AWS_S3_REGION_NAME") or env_str("AWS_DEFAULT_REGION") or None,
        # Unset, boto3 finds credentials itself (its environment variables, profile, instance role).
        "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
        "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
        "file_overwrite": True,
        # A download is spooled before it is streamed: past 8 MB to a temporary file, not memory.
        "max_memory_size": 8 * 1024 * 1024,
    }
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


def tls_pair(cert_file: str, key_file: str) -> tuple[str, str] | None:
    """The certificate and key `runportal` hands gunicorn to serve HTTPS itself (dbt Cloud
    clients speak only https), or None: both or neither, each a readable PEM file, the key
    the certificate's, so a mistake stops the start with its cause rather than a TLS error
    in every client."""
    if not cert_file and not key_file:
        return None
    if not (cert_file and key_file):
        raise ImproperlyConfigured("TLS_CERT_FILE and TLS_KEY_FILE go together: set both (HTTPS) or neither (HTTP)")
    for name, path in (("TLS_CERT_FILE", cert_file), ("TLS_KEY_FILE", key_file)):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}={path!r}: {exc.strerror or exc}") from exc
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise ImproperlyConfigured(
            f"TLS_CERT_FILE={cert_file!r} and TLS_KEY_FILE={key_file!r} are not a PEM certificate and its key: {exc}"
        ) from exc
    return str(Path(cert_file).resolve()), str(Path(key_file).resolve())


def env_tls_pair(cert_name: str, key_name: str) -> tuple[str, str] | None:
    """`tls_pair()` of the files the variables CERT_NAME and KEY_NAME name (no `_FILE` form)."""
    PORTAL_VARIABLES.update({cert_name, key_name})
    return tls_pair(os.environ.get(cert_name, "").strip(), os.environ.get(key_name, "").strip())


def served_base_url(host: str, port: int, tls: bool) -> str:
    """The URL `runportal` serves at: the machine's name when it listens on every address,
    https under TLS, the port left out when it is the scheme's own."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:  # a host name
        address = None
    if not host or (address and address.is_unspecified):
        host = socket.getfqdn()
    elif address and address.version == 6:
        host = f"[{address}]"
    scheme, default_port = ("https", 443) if tls else ("http", 80)
    return f"{scheme}://{host}" + ("" if port == default_port else f":{port}")


# A queue cluster's name is at most this long (runs/registry.py).
WORKER_NAME_MAX = 100


def default_worker_name() -> str:
    """The host name plus the first 8 hex digits of the kernel's boot id: containers that
    share a host name on different machines, and the same host after a reboot (when pids are
    reused), get different names. Without /proc (not Linux) the host name alone."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-.") or "worker"
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    except OSError:
        return host[:WORKER_NAME_MAX]
    return f"{host[: WORKER_NAME_MAX - 9]}-{boot_id}"


def env_worker_name(name: str) -> str:
    """A queue cluster's name from NAME, else `default_worker_name()`: letters, digits, '.',
    '_' or '-', starting with a letter or digit, at most WORKER_NAME_MAX characters."""
    value = env_str(name).strip() or default_worker_name()
    if not re.fullmatch(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{WORKER_NAME_MAX - 1}}}", value):
        raise ImproperlyConfigured(
            f"{name}={value!r}: use at most {WORKER_NAME_MAX} letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return value
